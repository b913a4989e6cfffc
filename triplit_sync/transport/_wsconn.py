"""One websocket and the frame-level work on it (websocket-client underneath): the upgrade URL,
connecting without proxies on loopback, the frame loop, close frames, cutting a stuck socket.

The lifecycle around it (reconnects, status, messages) is ``transport.WebSocketTransport``'s.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlencode

import websocket
from websocket import ABNF

from .._util.redact import redact
from .._util.timers import OneShot
from .._util.urls import is_http_url
from ..errors import ProtocolError
from ..wire import ChunkAssembler
from ..wire.frames import decode_message
from ..wire.messages import Chunk, Message, UnknownMessageType
from ._status import CloseInfo

__all__ = ["build_socket_url", "check_server_url", "parse_close_reason", "WsConnection"]

logger = logging.getLogger(__name__)

#: Seconds a close handshake may take before the socket is simply cut.
CLOSE_GRACE = 0.8

_ECHOABLE_CODES = frozenset({1000, 1001, 1008, 1011})


def check_server_url(server_url: Any) -> None:
    """Raise for anything but an ``http://`` or ``https://`` URL with a host."""
    if not isinstance(server_url, str):
        raise TypeError(f"server_url must be a string, not {type(server_url).__name__}")
    if not is_http_url(server_url):
        raise ValueError(
            f"server_url must start with http:// or https:// and name a host, got {redact(server_url)!r}"
        )


def build_socket_url(server_url: str, token: str, schema_hash: Optional[int] = None) -> str:
    """The upgrade URL for ``server_url``: ``http(s)://`` becomes ``ws(s)://``, any path is kept
    (PROTOCOL.md §1.1). The result holds the token: never log it unredacted.

        >>> build_socket_url("http://127.0.0.1:6543", "T")
        'ws://127.0.0.1:6543?sync-schema=false&token=T'
    """
    check_server_url(server_url)
    secure = server_url[:8].lower() == "https://"
    rest = server_url[8:] if secure else server_url[7:]
    params: Dict[str, str] = {}
    if schema_hash is not None:
        params["schema"] = str(schema_hash)
    params["sync-schema"] = "false"
    params["token"] = token
    sep = "&" if "?" in rest else "?"
    return f"{'wss' if secure else 'ws'}://{rest}{sep}{urlencode(params)}"


def parse_close_reason(reason: str) -> Tuple[Optional[str], bool]:
    """``(type, retry)`` of a close-frame reason: ``(None, True)`` without a reason,
    ``("UNKNOWN", True)`` for one that is not ``{"type": ..., "retry": ...}`` JSON."""
    if not reason:
        return None, True
    try:
        data = json.loads(reason)
        ctype = data["type"]
        if not isinstance(ctype, str):
            raise TypeError(ctype)
        return ctype, data.get("retry") is True
    except (ValueError, TypeError, KeyError):
        return "UNKNOWN", True


class WsConnection:
    """One connection attempt: its socket and what happened on it."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        # a websocket.WebSocket; typed Any because websocket-client leaves much of it untyped
        self.ws: Any = None
        self.opened = False
        self.ready = False
        self.client_id: Optional[str] = None
        self.manual = False
        self.reconnecting = False  # closed by reconnect(): a new connection follows at once
        self.close_sent = False
        self.close_message: Any = None  # the server's CLOSE message, if one came
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.error: Optional[str] = None
        self.finished = threading.Event()
        self.info: Any = None  # the CloseInfo, once the connection has ended
        self.owner: Optional[threading.Thread] = None  # the thread that reads this socket
        self.assembler = ChunkAssembler()
        self.keepalive: Any = None  # its _keepalive.Keepalive, from the moment it opened
        self.untrusted = False  # dropped because a frame could not be handled
        self._watchdog = OneShot("triplit-close-watchdog")

    def decode(self, data: bytes) -> Optional["Message"]:
        """The message in one text frame: None for a CHUNK piece of an unfinished message and
        for a frame of an unknown type (logged); raises ProtocolError for a malformed one."""
        try:
            msg = decode_message(data)
            if isinstance(msg, Chunk):
                text = self.assembler.add(msg)
                if text is None:
                    return None
                msg = decode_message(text)
                if isinstance(msg, Chunk):
                    raise ProtocolError("CHUNK frame: a chunk that holds another chunk")
        except UnknownMessageType as e:
            logger.warning("ignored a frame: %s", e)
            return None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "recv %s (%d bytes): %s", msg.TYPE, len(data), redact(data.decode("utf-8", "replace"), 300)
            )
        return msg

    def end_reason(self) -> Tuple[Optional[str], bool]:
        """``(type, retry)`` of how the connection ended: the server's CLOSE message, else the
        close frame's reason."""
        if self.close_message is not None:
            return self.close_message.type, bool(self.close_message.retry)
        ctype, retry = parse_close_reason(self.close_reason)
        if ctype == "MANUAL_DISCONNECT" and self.manual:
            retry = False
        return ctype, retry

    def close_info(self, will_reconnect: bool) -> CloseInfo:
        """The CloseInfo of this ended connection."""
        ctype, retry = self.end_reason()
        return CloseInfo(
            type=ctype,
            retry=retry,
            message=self.close_message.message if self.close_message is not None else None,
            code=self.close_code if self.close_code is not None else (1006 if self.opened else None),
            manual=self.manual,
            will_reconnect=will_reconnect,
            was_open=self.opened,
            was_ready=self.client_id is not None,
            error=self.error,
        )

    def open(self, url: str, *, timeout: float, io_timeout: float, direct_host: Optional[str]) -> None:
        """Connect and upgrade (raises on failure). ``direct_host`` bypasses proxy settings."""
        options: Dict[str, Any] = {"timeout": timeout}
        if direct_host is not None:
            # websocket-client >= 1.9 sends even localhost through http_proxy from the
            # environment, and reads its no-proxy list only when a proxy host is given.
            options.update(http_proxy_host="127.0.0.1", http_proxy_port=9, http_no_proxy=[direct_host])
        ws: Any = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        try:
            ws.connect(url, **options)
        except BaseException:
            ws.shutdown()
            raise
        # One timeout for both directions: it bounds a send to a peer that stopped reading;
        # on the read side a timeout only means "idle" and the loop goes on.
        ws.settimeout(io_timeout)
        self.ws = ws

    def read(self, on_text: Callable[[bytes], None], send_lock: threading.Lock) -> None:
        """Receive frames until the socket ends; ``on_text`` gets each whole text message.
        Answers pings, records (and answers) the peer's close frame, notes network errors."""
        ws = self.ws
        assert ws is not None
        cont = ws.cont_frame
        while True:
            try:
                frame = ws.recv_frame()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception as e:
                if self.error is None and not self.close_sent:  # keep the first cause (a failed send)
                    self.error = f"{type(e).__name__}: {redact(e, 300)}"
                return
            op = frame.opcode
            if op in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT):
                try:
                    cont.validate(frame)
                    cont.add(frame)
                    if not cont.is_fire(frame):
                        continue
                    opcode, whole = cont.extract(frame)
                except websocket.WebSocketException as e:
                    self.error = f"bad frame sequence: {e}"
                    return
                if opcode == ABNF.OPCODE_TEXT:
                    on_text(whole.data)
                else:
                    logger.warning("ignored a binary frame of %d bytes", len(whole.data))
            elif op == ABNF.OPCODE_CLOSE:
                self._on_close_frame(frame.data, send_lock)
                return
            elif op == ABNF.OPCODE_PING:
                try:
                    ws.pong(frame.data)
                except Exception:
                    pass  # the next read reports a dead socket

    def _on_close_frame(self, data: bytes, send_lock: threading.Lock) -> None:
        self.close_code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
        self.close_reason = data[2:].decode("utf-8", "replace")
        logger.debug("close frame %s %s", self.close_code, redact(self.close_reason, 200))
        if self.close_sent:
            return
        self.close_sent = True
        code = self.close_code
        echo = code if code in _ECHOABLE_CODES or 3000 <= code <= 4999 else 1000
        self._send_control(struct.pack("!H", echo), send_lock)

    def write(self, frames: List[bytes]) -> int:
        """Write text frames (the caller holds the send lock); returns the bytes written."""
        ws = self.ws
        if ws is None:
            raise websocket.WebSocketConnectionClosedException("not connected")
        total = 0
        for frame in frames:
            ws.send(frame, ABNF.OPCODE_TEXT)
            total += len(frame)
        return total

    def send_close(self, code: int, reason: str, send_lock: threading.Lock) -> None:
        """Start the close handshake; the socket is cut if it has not ended within the grace."""
        if self.close_sent:
            return
        self.close_sent = True
        self._watchdog.schedule(CLOSE_GRACE, self.abort)
        if self.ws is not None:
            self._send_control(struct.pack("!H", code) + reason.encode("utf-8"), send_lock)
        # else: still connecting; the transport drops the socket as soon as connect() returns

    def _send_control(self, payload: bytes, send_lock: threading.Lock) -> None:
        ws = self.ws
        if ws is None:
            return
        if not send_lock.acquire(timeout=CLOSE_GRACE / 2):
            self.abort()  # a writer is stuck on a peer that does not read
            return
        try:
            ws.send(payload, ABNF.OPCODE_CLOSE)
        except Exception as e:
            logger.debug("close frame not sent: %s", redact(e, 200))
            self.abort()
        finally:
            send_lock.release()

    def abort(self) -> None:
        """Cut the socket: wakes a reader blocked in recv and a writer blocked in send."""
        ws = self.ws
        sock = ws.sock if ws is not None else None
        if sock is not None:
            try:
                sock.shutdown(2)  # SHUT_RDWR
            except OSError:
                pass

    def shutdown(self) -> None:
        """Release the socket and the close watchdog."""
        self._watchdog.cancel()
        if self.ws is not None:
            try:
                self.ws.shutdown()
            except Exception:
                pass
