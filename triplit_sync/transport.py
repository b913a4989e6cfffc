"""One websocket to a Triplit server: connect, read, send, ping, close reasons, reconnect.

Knows nothing of sessions, stores or queries. A daemon *runner* thread owns each connection
attempt: it rebuilds the URL with a fresh token, connects, reads frames until the socket ends,
reports the close, and waits out the backoff before the next attempt. Facts: PROTOCOL.md §1, §2.

    >>> t = WebSocketTransport("http://127.0.0.1:6543", token_provider=lambda: token,
    ...                        on_message=print)                         # doctest: +SKIP
    >>> t.connect(); t.wait_ready(5)                                       # doctest: +SKIP
    True
    >>> t.send(Ping(client_timestamp=1)); t.close()                        # doctest: +SKIP
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import struct
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import urlencode, urlsplit

import websocket
from websocket import ABNF

from .errors import ClientClosedError, ProtocolError
from .protocol import (
    DEFAULT_CHUNK_SIZE,
    NO_RETRY_CLOSE_TYPES,
    Chunk,
    ChunkAssembler,
    Close,
    Message,
    Ping,
    Ready,
    SchemaRequest,
    SchemaResponse,
    decode_message,
    encode_frames,
    redact,
)

__all__ = ["ConnectionStatus", "CloseInfo", "StatusChange", "WebSocketTransport", "build_socket_url"]

logger = logging.getLogger(__name__)

_MANUAL_REASON = '{"type":"MANUAL_DISCONNECT","retry":false}'
_CLOSE_GRACE = 0.8  # seconds a close handshake may take before the socket is simply cut


class _RedactFilter(logging.Filter):
    """websocket-client's trace mode logs the upgrade request, whose URL holds the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        record.msg, record.args = redact(message), ()
        return True


_ws_logger = logging.getLogger("websocket")
if not any(isinstance(f, _RedactFilter) for f in _ws_logger.filters):
    _ws_logger.addFilter(_RedactFilter())


class ConnectionStatus(str, Enum):
    """State of the socket (``OPEN`` means the socket is open, not that READY has arrived)."""

    UNINITIALIZED = "UNINITIALIZED"
    CONNECTING = "CONNECTING"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


@dataclass(frozen=True)
class CloseInfo:
    """How one connection ended.

    ``type`` is the CLOSE type (``"UNAUTHORIZED"``, ...; ``"UNKNOWN"`` for an unparseable reason;
    None when the close had no reason: network drop, server crash). ``code`` is the close-frame
    code (1006 when the socket ended without one). ``manual`` marks closes this side asked for
    (disconnect, reconnect, close). ``error`` describes a network failure (token-free).
    """

    type: Optional[str]
    retry: bool
    message: Optional[str]
    code: Optional[int]
    manual: bool
    will_reconnect: bool
    was_open: bool = True
    was_ready: bool = False
    error: Optional[str] = None

    @property
    def is_session_error(self) -> bool:
        """True for UNAUTHORIZED, TOKEN_EXPIRED, ROLES_MISMATCH and SCHEMA_MISMATCH."""
        return self.type in ("UNAUTHORIZED", "TOKEN_EXPIRED", "ROLES_MISMATCH", "SCHEMA_MISMATCH")


@dataclass(frozen=True)
class StatusChange:
    """What status listeners receive. ``manual`` is True when a disconnect()/reconnect()/close()
    of this transport caused the change; ``close`` is set on changes caused by a close."""

    status: ConnectionStatus
    previous: ConnectionStatus
    manual: bool = False
    close: Optional[CloseInfo] = None


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_socket_url(server_url: str, token: str, schema_hash: Optional[int] = None) -> str:
    """The upgrade URL for ``server_url``: ``http(s)://`` becomes ``ws(s)://`` and the path is
    kept (PROTOCOL.md §1.1). The result holds the token: never log it unredacted.

        >>> build_socket_url("http://127.0.0.1:6543", "T")
        'ws://127.0.0.1:6543?sync-schema=false&token=T'
    """
    _check_server_url(server_url)
    secure = server_url[:8].lower() == "https://"
    rest = server_url[8:] if secure else server_url[7:]
    params: Dict[str, Any] = {}
    if schema_hash is not None:
        params["schema"] = str(schema_hash)
    params["sync-schema"] = "false"
    params["token"] = token
    sep = "&" if "?" in rest else "?"
    return f"{'wss' if secure else 'ws'}://{rest}{sep}{urlencode(params)}"


def _check_server_url(server_url: Any) -> None:
    if not isinstance(server_url, str):
        raise TypeError(f"server_url must be a string, not {type(server_url).__name__}")
    parts = urlsplit(server_url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"server_url must start with http:// or https:// and name a host, got {redact(server_url)!r}")


def _parse_close_reason(reason: str) -> "tuple[Optional[str], bool]":
    if not reason:
        return None, True
    try:
        data = json.loads(reason)
        ctype = data["type"]
        if not isinstance(ctype, str):
            raise TypeError
        return ctype, data.get("retry") is True
    except (ValueError, TypeError, KeyError):
        return "UNKNOWN", True


class _Connection:
    """State of one connection attempt (one socket)."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.ws: Optional[websocket.WebSocket] = None
        self.opened = False
        self.ready = False
        self.client_id: Optional[str] = None
        self.manual = False
        self.close_sent = False
        self.close_message: Optional[Close] = None
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.error: Optional[str] = None
        self.finished = threading.Event()
        self.info: Optional[CloseInfo] = None
        self.watchdog: Optional[threading.Timer] = None
        self.assembler = ChunkAssembler()

    def abort(self) -> None:
        """Cut the socket: wakes a reader blocked in recv and a writer blocked in send."""
        ws = self.ws
        if ws is not None and ws.sock is not None:
            try:
                ws.sock.shutdown(2)  # SHUT_RDWR
            except OSError:
                pass


class WebSocketTransport:
    """A self-reconnecting websocket to a Triplit server (see the module docstring).

    ``token_provider`` is called before every connection attempt (None: do not connect).
    ``on_message`` runs on the reader thread for every decoded server message except CLOSE
    (reported through ``on_close``) and CHUNK pieces (the joined message is delivered); READY is
    delivered after the transport has marked itself ready. ``on_close`` runs once per connection
    whose socket opened. An exception in either callback is logged and passed to ``error_hook``.

    Reconnects (exponential backoff with jitter, reset when a socket opens) only after a close
    without a reason, with ``retry: true`` or with an unparseable reason; never after
    UNAUTHORIZED, TOKEN_EXPIRED, ROLES_MISMATCH, SCHEMA_MISMATCH, INTERNAL_ERROR or a manual
    disconnect. All threads are daemons.
    """

    def __init__(
        self,
        server_url: str,
        *,
        token_provider: Callable[[], Optional[str]],
        on_message: Callable[[Message], None],
        on_close: Optional[Callable[[CloseInfo], None]] = None,
        ping_interval: Optional[float] = 45.0,
        backoff_initial: float = 0.25,
        backoff_max: float = 30.0,
        backoff_jitter: float = 0.2,
        schema_hash: Optional[int] = None,
        schema_provider: Optional[Callable[[], Optional[Dict[str, Any]]]] = None,
        chunk_size: Optional[int] = DEFAULT_CHUNK_SIZE,
        connect_timeout: float = 10.0,
        send_timeout: float = 10.0,
        error_hook: Optional[Callable[[BaseException], None]] = None,
        name: str = "triplit",
    ) -> None:
        _check_server_url(server_url)
        if not callable(token_provider):
            raise TypeError("token_provider must be a callable returning a token or None")
        if not callable(on_message):
            raise TypeError("on_message must be callable")
        if ping_interval is not None and not ping_interval > 0:
            raise ValueError(f"ping_interval must be a positive number of seconds or None, got {ping_interval!r}")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError(f"need 0 < backoff_initial <= backoff_max, got {backoff_initial!r}, {backoff_max!r}")
        if not 0 <= backoff_jitter < 1:
            raise ValueError(f"backoff_jitter must be in [0, 1), got {backoff_jitter!r}")
        if chunk_size is not None and chunk_size < 0:
            raise ValueError(f"chunk_size must be a positive number of bytes or None, got {chunk_size!r}")
        for label, value in (("connect_timeout", connect_timeout), ("send_timeout", send_timeout)):
            if not value > 0:
                raise ValueError(f"{label} must be a positive number of seconds, got {value!r}")
        self.server_url = server_url
        self._token_provider = token_provider
        self._on_message = on_message
        self._on_close = on_close
        self.ping_interval = ping_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.backoff_jitter = backoff_jitter
        self.schema_hash = schema_hash
        self._schema_provider = schema_provider
        self.chunk_size = chunk_size
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self._error_hook = error_hook
        self._name = name
        host = urlsplit(server_url).hostname or ""
        self._loopback = _is_loopback(host)
        self._host = host

        self._lock = threading.Condition(threading.Lock())
        self._send_lock = threading.Lock()
        self._status = ConnectionStatus.UNINITIALIZED
        self._conn: Optional[_Connection] = None
        self._runner: Optional[threading.Thread] = None
        self._generation = 0
        self._want = False
        self._closed = False
        self._attempt = 0  # failed attempts since the last open; drives the backoff
        self._listeners: List[Callable[[StatusChange], None]] = []
        self._pending_changes: List[StatusChange] = []
        self._notifying = False
        self.bytes_received = 0
        self.bytes_sent = 0

    # ---------------------------------------------------------------- public API

    def __repr__(self) -> str:
        return f"<WebSocketTransport {redact(self.server_url)!r} status={self._status.value}>"

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    @property
    def client_id(self) -> Optional[str]:
        """The ``clientId`` of the current connection's READY (None before READY)."""
        conn = self._conn
        return conn.client_id if conn is not None and conn.ready else None

    @property
    def is_ready(self) -> bool:
        """True between READY and the end of the connection: messages can be sent."""
        conn = self._conn
        return conn is not None and conn.ready and not conn.close_sent and self._status is ConnectionStatus.OPEN

    @property
    def closed(self) -> bool:
        """True after close(): the transport cannot connect again."""
        return self._closed

    def connect(self) -> None:
        """Start connecting in the background: a no-op while connecting or open, an immediate
        attempt while waiting out a reconnect backoff. Raises ClientClosedError after close()."""
        with self._lock:
            if self._closed:
                raise ClientClosedError("the transport is closed")
            running = self._runner is not None and self._runner.is_alive()
            if self._want and running and self._status in (ConnectionStatus.CONNECTING, ConnectionStatus.OPEN):
                return
            self._start_runner_locked()
        self._notify()

    def disconnect(self, timeout: float = 1.0) -> None:
        """Close the connection (code 1000, MANUAL_DISCONNECT) and stop reconnecting. Returns
        within about ``timeout`` seconds even if the server does not answer."""
        self._stop(manual_status=True, timeout=timeout)

    def reconnect(self, timeout: float = 1.0) -> None:
        """Drop the current connection (if any) and connect again now, with a fresh token from
        ``token_provider`` and no backoff wait. Use it after a session change."""
        with self._lock:
            if self._closed:
                raise ClientClosedError("the transport is closed")
        conn = self._stop(manual_status=False, timeout=timeout)
        with self._lock:
            if self._closed:
                return
            self._attempt = 0
            self._start_runner_locked(previous=conn)
        self._notify()

    def close(self, timeout: float = 1.0) -> None:
        """Disconnect for good: threads end, connect() raises afterwards. Idempotent."""
        with self._lock:
            self._closed = True
        self._stop(manual_status=True, timeout=timeout)
        runner = self._runner
        if runner is not None and runner is not threading.current_thread():
            runner.join(timeout)

    def send(self, msg: Message) -> bool:
        """Send ``msg`` (as CHUNK pieces when it is over ``chunk_size``). True only if it was
        written to a socket that had received READY; False when not ready or the write failed
        (the connection is then dropped and, per the rules, re-established). Never queues.
        Raises TypeError at the call for a message that cannot be encoded."""
        frames = encode_frames(msg, self.chunk_size)
        with self._send_lock:
            conn = self._conn
            if conn is None or not conn.ready or conn.close_sent or conn.ws is None:
                logger.debug("not sent (not ready): %s", msg.TYPE)
                return False
            return self._write(conn, frames, msg.TYPE)

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until READY (True), or until ``timeout`` passes or the transport stops trying
        to connect (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self.is_ready:
                    return True
                if not self._want or self._closed:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining if remaining is None else min(remaining, 1.0))

    def add_status_listener(self, callback: Callable[[StatusChange], None]) -> Callable[[], None]:
        """Call ``callback(StatusChange)`` on every status change, in order; returns a remover.
        Listeners run on whichever thread changed the status: keep them short."""
        if not callable(callback):
            raise TypeError("status listener must be callable")
        with self._lock:
            self._listeners.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return remove

    def backoff_delay(self, attempt: int) -> float:
        """The wait before reconnect attempt ``attempt`` (0 = first retry): ``backoff_initial``
        doubled per attempt, capped at ``backoff_max``, minus up to ``backoff_jitter`` of it."""
        nominal = min(self.backoff_max, self.backoff_initial * (2 ** min(attempt, 60)))
        return nominal * (1.0 - self.backoff_jitter * random.random())

    # ---------------------------------------------------------------- status plumbing

    def _set_status_locked(
        self, status: ConnectionStatus, manual: bool = False, close: Optional[CloseInfo] = None
    ) -> None:
        if status is self._status:
            return
        self._pending_changes.append(StatusChange(status, self._status, manual, close))
        self._status = status
        self._lock.notify_all()

    def _notify(self) -> None:
        # Whoever finds notifications pending delivers all of them in order; a thread that finds
        # another one delivering just leaves its changes to it (no waiting, no reordering).
        with self._lock:
            if self._notifying:
                return
            self._notifying = True
        while True:
            with self._lock:
                if not self._pending_changes:
                    self._notifying = False
                    return
                change = self._pending_changes.pop(0)
                listeners = list(self._listeners)
            for cb in listeners:
                self._call_safely(cb, change, what="status listener")

    def _call_safely(self, fn: Callable[..., Any], *args: Any, what: str) -> None:
        try:
            fn(*args)
        except Exception as e:
            logger.error("%s raised %s: %s", what, type(e).__name__, redact(e, 500), exc_info=True)
            hook = self._error_hook
            if hook is not None:
                try:
                    hook(e)
                except Exception:
                    logger.exception("error hook raised")

    # ---------------------------------------------------------------- lifecycle

    def _start_runner_locked(self, previous: Optional[_Connection] = None) -> None:
        self._want = True
        self._generation += 1
        gen = self._generation
        self._set_status_locked(ConnectionStatus.CONNECTING, manual=previous is not None)
        thread = threading.Thread(target=self._run, args=(gen,), name=f"{self._name}-ws-{gen}", daemon=True)
        self._runner = thread
        thread.start()

    def _stop(self, manual_status: bool, timeout: float) -> Optional[_Connection]:
        """Stop the runner and close the current connection; returns that connection."""
        deadline = time.monotonic() + max(0.05, timeout)
        with self._lock:
            self._want = not manual_status and not self._closed
            self._generation += 1  # the runner of the old generation no longer touches status
            conn = self._conn
            live = conn is not None and not conn.finished.is_set()
            if live:
                conn.manual = True
            if manual_status:
                if live and conn is not None and conn.opened:
                    self._set_status_locked(ConnectionStatus.CLOSING, manual=True)
                elif self._status is not ConnectionStatus.UNINITIALIZED or self._closed:
                    self._set_status_locked(ConnectionStatus.CLOSED, manual=True)
            elif live and conn is not None and conn.opened:
                self._set_status_locked(ConnectionStatus.CLOSING, manual=True)
            self._lock.notify_all()
        self._notify()
        if live and conn is not None:
            self._initiate_close(conn, 1000, _MANUAL_REASON)
            if threading.current_thread() is not self._runner:
                conn.finished.wait(max(0.0, deadline - time.monotonic()))
                if not conn.finished.is_set():
                    conn.abort()
                    conn.finished.wait(max(0.0, deadline - time.monotonic()))
            if manual_status:
                with self._lock:
                    if not self._want:
                        self._set_status_locked(ConnectionStatus.CLOSED, manual=True, close=conn.info)
                self._notify()
        return conn

    def _initiate_close(self, conn: _Connection, code: int, reason: str) -> None:
        """Send a close frame (bounded in time) and make sure the socket ends soon after."""
        if conn.close_sent:
            return
        conn.close_sent = True
        watchdog = threading.Timer(_CLOSE_GRACE, conn.abort)
        watchdog.daemon = True
        conn.watchdog = watchdog
        watchdog.start()
        ws = conn.ws
        if ws is None or ws.sock is None:
            return  # still connecting: the runner closes it when connect() returns
        if self._send_lock.acquire(timeout=_CLOSE_GRACE / 2):
            try:
                ws.send(struct.pack("!H", code) + reason.encode("utf-8"), ABNF.OPCODE_CLOSE)
            except Exception as e:
                logger.debug("close frame not sent: %s", redact(e, 200))
                conn.abort()
            finally:
                self._send_lock.release()
        else:
            conn.abort()  # a writer is stuck on a peer that does not read

    def _run(self, gen: int) -> None:
        while True:
            with self._lock:
                if gen != self._generation or not self._want:
                    return
            token: Optional[str]
            provider_error: Optional[str] = None
            try:
                token = self._token_provider()
            except Exception as e:
                provider_error = f"token provider raised {type(e).__name__}: {redact(e, 300)}"
                logger.warning("%s; will retry", provider_error)
                token = None
            else:
                if token is None:
                    logger.info("no token: not connecting")
                    with self._lock:
                        if gen == self._generation:
                            self._want = False
                            self._set_status_locked(ConnectionStatus.CLOSED)
                    self._notify()
                    return
            conn = _Connection(gen)
            with self._lock:
                if gen != self._generation:
                    return
                self._conn = conn
                self._set_status_locked(ConnectionStatus.CONNECTING)
            self._notify()
            if provider_error is None and token is not None:
                self._connect_and_read(conn, str(token))
            else:
                conn.error = provider_error
            info = self._close_info(conn)
            conn.info = info
            if conn.opened:
                logger.info(
                    "connection closed (type=%s, code=%s, reconnect=%s)", info.type, info.code, info.will_reconnect
                )
                if self._on_close is not None:
                    self._call_safely(self._on_close, info, what="on_close")
            else:
                logger.info("connection attempt failed: %s", info.error)
            conn.finished.set()
            if conn.watchdog is not None:
                conn.watchdog.cancel()
            with self._lock:
                if gen != self._generation:
                    return
                if conn.opened:
                    self._attempt = 0
                self._set_status_locked(ConnectionStatus.CLOSED, manual=conn.manual, close=info)
                if not info.will_reconnect:
                    self._want = False
                    self._lock.notify_all()
                    delay = None
                else:
                    delay = self.backoff_delay(self._attempt)
                    self._attempt += 1
            self._notify()
            if delay is None:
                return
            logger.debug("reconnecting in %.3f s", delay)
            with self._lock:
                end = time.monotonic() + delay
                while gen == self._generation and self._want:
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        break
                    self._lock.wait(remaining)

    def _connect_and_read(self, conn: _Connection, token: str) -> None:
        url = build_socket_url(self.server_url, token, self.schema_hash)
        logger.debug("connecting to %s", redact(url))
        options: Dict[str, Any] = {"timeout": self.connect_timeout}
        if self._loopback:
            # websocket-client >= 1.9 routes even localhost through http_proxy from the
            # environment; its no-proxy list is only read when a proxy host is given.
            options.update(http_proxy_host="127.0.0.1", http_proxy_port=9, http_no_proxy=[self._host])
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        try:
            ws.connect(url, **options)
        except Exception as e:
            conn.error = f"{type(e).__name__}: {redact(e, 300)}"
            try:
                ws.shutdown()
            except Exception:
                pass
            return
        conn.ws = ws
        with self._lock:
            stale = conn.generation != self._generation or conn.close_sent
            if not stale:
                conn.opened = True
                self._set_status_locked(ConnectionStatus.OPEN)
        self._notify()
        if stale:
            ws.shutdown()
            return
        ws.settimeout(self.send_timeout)
        try:
            self._read_loop(conn, ws)
        finally:
            try:
                ws.shutdown()
            except Exception:
                pass

    def _read_loop(self, conn: _Connection, ws: websocket.WebSocket) -> None:
        ping_thread: Optional[threading.Thread] = None
        stop_ping = threading.Event()
        try:
            while True:
                try:
                    frame = ws.recv_frame()
                except websocket.WebSocketTimeoutException:
                    continue  # idle; the socket timeout exists to bound sends
                except Exception as e:
                    if not conn.close_sent:
                        conn.error = f"{type(e).__name__}: {redact(e, 300)}"
                    return
                op = frame.opcode
                if op in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT):
                    try:
                        ws.cont_frame.validate(frame)
                        ws.cont_frame.add(frame)
                        if not ws.cont_frame.is_fire(frame):
                            continue
                        opcode, whole = ws.cont_frame.extract(frame)
                    except websocket.WebSocketException as e:
                        conn.error = f"bad frame sequence: {e}"
                        return
                    data = whole.data
                    self.bytes_received += len(data)
                    if opcode != ABNF.OPCODE_TEXT:
                        logger.warning("ignored a binary frame of %d bytes", len(data))
                        continue
                    msg = self._decode(conn, data)
                    if msg is None:
                        continue
                    if isinstance(msg, Ready) and ping_thread is None and self.ping_interval:
                        ping_thread = threading.Thread(
                            target=self._ping_loop, args=(conn, stop_ping), name=f"{self._name}-ping", daemon=True
                        )
                        ping_thread.start()
                    self._handle(conn, msg)
                elif op == ABNF.OPCODE_CLOSE:
                    self._on_close_frame(conn, ws, frame.data)
                    return
                elif op == ABNF.OPCODE_PING:
                    try:
                        ws.pong(frame.data)
                    except Exception:
                        pass
        finally:
            stop_ping.set()
            conn.ready = False

    def _on_close_frame(self, conn: _Connection, ws: websocket.WebSocket, data: bytes) -> None:
        code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
        conn.close_code = code
        conn.close_reason = data[2:].decode("utf-8", "replace")
        logger.debug("close frame %s %s", code, redact(conn.close_reason, 200))
        if not conn.close_sent:
            conn.close_sent = True
            echo = code if code in (1000, 1001, 1008, 1011) or 3000 <= code <= 4999 else 1000
            if self._send_lock.acquire(timeout=_CLOSE_GRACE / 2):
                try:
                    ws.send(struct.pack("!H", echo), ABNF.OPCODE_CLOSE)
                except Exception:
                    pass
                finally:
                    self._send_lock.release()

    def _decode(self, conn: _Connection, data: bytes) -> Optional[Message]:
        debug = logger.isEnabledFor(logging.DEBUG)
        try:
            msg = decode_message(data)
            if isinstance(msg, Chunk):
                text = conn.assembler.add(msg)
                if text is None:
                    return None
                msg = decode_message(text)
                if isinstance(msg, Chunk):
                    raise ProtocolError("CHUNK frame: a chunk that holds another chunk")
        except ProtocolError as e:
            logger.warning("ignored a malformed frame: %s", e)
            return None
        if debug:
            logger.debug("recv %s (%d bytes): %s", msg.TYPE, len(data), redact(data.decode("utf-8", "replace"), 300))
        return msg

    def _handle(self, conn: _Connection, msg: Message) -> None:
        if isinstance(msg, Ready):
            with self._lock:
                conn.client_id = msg.client_id
                conn.ready = True
                self._lock.notify_all()
        elif isinstance(msg, SchemaRequest):
            schema = None
            if self._schema_provider is not None:
                try:
                    schema = self._schema_provider()
                except Exception as e:
                    logger.error("schema provider raised %s: %s", type(e).__name__, redact(e, 300), exc_info=True)
            with self._send_lock:
                # Only message allowed before READY; never chunked (CHUNK needs a ready server).
                if not conn.close_sent:
                    self._write(conn, encode_frames(SchemaResponse(schema), None), SchemaResponse.TYPE)
        elif isinstance(msg, Close):
            logger.info("server closed the session: %s %s", msg.type, redact(msg.message or "", 300))
            conn.close_message = msg
            self._initiate_close(conn, 1000, json.dumps({"type": msg.type, "retry": msg.retry}, separators=(",", ":")))
            return
        if conn.manual:
            return  # the caller asked to disconnect: later messages are not theirs any more
        self._call_safely(self._on_message, msg, what="on_message")

    def _write(self, conn: _Connection, frames: List[bytes], mtype: str) -> bool:
        """Write frames; the caller holds the send lock."""
        ws = conn.ws
        if ws is None:
            return False
        try:
            for frame in frames:
                ws.send(frame, ABNF.OPCODE_TEXT)
                self.bytes_sent += len(frame)
        except Exception as e:
            conn.error = f"send failed: {type(e).__name__}: {redact(e, 300)}"
            logger.warning("%s not sent, dropping the connection: %s", mtype, conn.error)
            conn.ready = False
            conn.abort()
            return False
        if logger.isEnabledFor(logging.DEBUG):
            size = sum(len(f) for f in frames)
            text = frames[0][:4096].decode("utf-8", "replace")
            logger.debug("sent %s (%d bytes in %d frames): %s", mtype, size, len(frames), redact(text, 300))
        return True

    def _ping_loop(self, conn: _Connection, stop: threading.Event) -> None:
        interval = self.ping_interval or 45.0
        while not stop.wait(interval):
            if self._conn is not conn:
                return
            self.send(Ping(client_timestamp=int(time.time() * 1000)))

    def _close_info(self, conn: _Connection) -> CloseInfo:
        if conn.close_message is not None:
            ctype: Optional[str] = conn.close_message.type
            retry = conn.close_message.retry
            message = conn.close_message.message
        else:
            ctype, retry = _parse_close_reason(conn.close_reason)
            message = None
            if ctype == "MANUAL_DISCONNECT" and conn.manual:
                retry = False
        code = conn.close_code if conn.close_code is not None else (1006 if conn.opened else None)
        retryable = retry and ctype not in NO_RETRY_CLOSE_TYPES
        with self._lock:
            will = retryable and not conn.manual and self._want and not self._closed and (
                conn.generation == self._generation
            )
        return CloseInfo(
            type=ctype,
            retry=retry,
            message=message,
            code=code,
            manual=conn.manual,
            will_reconnect=will,
            was_open=conn.opened,
            was_ready=conn.client_id is not None,
            error=conn.error,
        )
