"""One websocket to a Triplit server: connect, read, send, ping, close reasons, reconnect.

Knows nothing of sessions, stores or queries. A daemon *runner* thread owns each connection
attempt: it rebuilds the URL with a fresh token, connects, reads frames until the socket ends,
reports the close, and waits out the backoff before the next attempt. Facts: PROTOCOL.md §1, §2.
"""

from __future__ import annotations

import gc
import json
import logging
import random
import threading
import time
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import urlsplit

from .._util.callbacks import wait_until
from .._util.redact import install_log_filter, redact
from .._util.urls import is_loopback
from ..errors import ClientClosedError, ProtocolError
from ..wire.frames import encode_frames
from ..wire.messages import (
    DEFAULT_CHUNK_SIZE,
    NO_RETRY_CLOSE_TYPES,
    Close,
    Message,
    Ping,
    Pong,
    Ready,
    SchemaRequest,
    SchemaResponse,
)
from ._board import StatusBoard
from ._keepalive import Keepalive, check_pong_timeout
from ._status import CloseInfo, ConnectionStatus, StatusChange
from ._wsconn import WsConnection, build_socket_url, check_server_url

__all__ = ["ConnectionStatus", "CloseInfo", "StatusChange", "WebSocketTransport", "build_socket_url"]

logger = logging.getLogger(__name__)

_MANUAL_REASON = '{"type":"MANUAL_DISCONNECT","retry":false}'


# websocket-client's trace mode logs the upgrade request, whose URL holds the token.
install_log_filter(logging.getLogger("websocket"))


#: Frames from this size on are handled with the garbage collector paused.
_LARGE_FRAME = 256 * 1024
# How long a new connection waits for the previous one to finish closing before cutting its socket.
_CLOSE_WAIT = 1.0


class WebSocketTransport:
    """A self-reconnecting websocket to a Triplit server.

    ``token_provider`` is called on the runner thread before every connection attempt (the URL
    is rebuilt each time); None means "do not connect" (status CLOSED), an exception counts as a
    failed attempt. ``on_message`` runs on the reader thread for every decoded server message
    except CLOSE (reported through ``on_close``) and CHUNK pieces (the joined message is
    delivered); READY is delivered after the transport has marked itself ready, and nothing is
    delivered after a disconnect()/reconnect() of that connection. SCHEMA_REQUEST is answered
    here with ``schema_provider()`` (``schema_hash`` puts ``schema=<hash>`` in the URL).
    ``on_close`` runs once per connection whose socket opened. An exception in a status
    listener or ``on_close`` is logged and passed to ``error_hook``. A frame that cannot be
    decoded, or whose ``on_message`` raises, is logged and passed to ``error_hook``, and the
    connection is dropped and resumed: its state can no longer be trusted (repeats back off).

    After READY a PING goes out every ``ping_interval`` seconds; a ping unanswered after
    ``pong_timeout`` seconds (default: 10, at most ``ping_interval``), or no READY within
    ``connect_timeout`` of opening, drops the connection, so a silent one is noticed at most
    ``ping_interval + pong_timeout`` after its last frame (see ``_keepalive.py``); ``probe()``
    pings at once.

    Reconnects (``backoff_initial`` doubling to ``backoff_max``, minus up to ``backoff_jitter``
    of it, reset when a socket opens) only after a close without a reason, with ``retry: true``
    or with an unparseable reason; never after UNAUTHORIZED, TOKEN_EXPIRED, ROLES_MISMATCH,
    SCHEMA_MISMATCH, INTERNAL_ERROR or a manual disconnect. ``send_timeout`` bounds a write to a
    peer that stopped reading (the connection is then dropped). All threads are daemons.

        transport = WebSocketTransport(
            "http://127.0.0.1:6543", token_provider=lambda: token, on_message=handle)
        transport.connect()                       # returns at once; a daemon thread connects
        if transport.wait_ready(10):
            transport.send(ConnectQuery(query_id(q), q))
        transport.close()
    """

    def __init__(
        self,
        server_url: str,
        *,
        token_provider: Callable[[], Optional[str]],
        on_message: Callable[[Message], None],
        on_close: Optional[Callable[[CloseInfo], None]] = None,
        ping_interval: Optional[float] = 15.0,
        pong_timeout: Optional[float] = None,
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
        check_server_url(server_url)
        if not callable(token_provider):
            raise TypeError("token_provider must be a callable returning a token or None")
        if not callable(on_message):
            raise TypeError("on_message must be callable")
        if ping_interval is not None and not ping_interval > 0:
            raise ValueError(
                f"ping_interval must be a positive number of seconds or None, got {ping_interval!r}"
            )
        pong_timeout = check_pong_timeout(ping_interval, pong_timeout)
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError(
                f"need 0 < backoff_initial <= backoff_max, got {backoff_initial!r}, {backoff_max!r}"
            )
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
        self.pong_timeout = pong_timeout
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
        self._loopback = is_loopback(host)
        self._host = host

        self._lock = threading.Condition(threading.Lock())
        self._send_lock = threading.Lock()
        self._board = StatusBoard(self._lock, self._call_safely)
        self._conn: Optional[WsConnection] = None
        self._runner: Optional[threading.Thread] = None
        self._generation = 0
        self._want = False
        self._closed = False
        self._attempt = 0  # failed attempts since the last open; drives the backoff
        self._strikes = 0  # connections dropped for a bad frame since one was handled well
        self._retries = 0  # reconnects since the last READY, for the log line at the next one
        #: UTF-8 payload bytes of the text messages received / sent (CHUNK frames included)
        self.bytes_received = 0
        self.bytes_sent = 0

    # ---------------------------------------------------------------- public API

    def __repr__(self) -> str:
        return f"<WebSocketTransport {redact(self.server_url)!r} status={self._board.status.value}>"

    @property
    def status(self) -> ConnectionStatus:
        return self._board.status

    @property
    def client_id(self) -> Optional[str]:
        """The ``clientId`` of the current connection's READY (None before READY)."""
        conn = self._conn
        return conn.client_id if conn is not None and conn.ready else None

    @property
    def is_ready(self) -> bool:
        """True between READY and the end of the connection: messages can be sent."""
        conn = self._conn
        return (
            conn is not None and conn.ready and not conn.close_sent and self._board.status is ConnectionStatus.OPEN
        )

    @property
    def wants_connection(self) -> bool:
        """True from connect() until disconnect(), close() or a close that ends reconnecting
        (e.g. a session error): connecting, open, or waiting out a reconnect backoff."""
        return self._want and not self._closed

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
            ended = self._conn is not None and self._conn.info is not None  # e.g. called from on_close
            if self._want and running and not ended and self._board.status in (
                ConnectionStatus.CONNECTING,
                ConnectionStatus.OPEN,
            ):
                return
            self._start_runner_locked()
        self._board.notify()

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
        self._board.notify()

    def close(self, timeout: float = 1.0) -> None:
        """Disconnect for good: threads end, connect() raises afterwards. Idempotent."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
        self._stop(manual_status=True, timeout=timeout)
        runner = self._runner
        if runner is not None and runner is not threading.current_thread():
            runner.join(max(0.0, deadline - time.monotonic()))

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

    def probe(self, timeout: Optional[float] = None) -> bool:
        """Make the connection prove it is alive: a PING now; no frame within ``timeout``
        seconds (default ``pong_timeout``) drops the connection and reconnects. False when
        there is no ready connection to probe.

            transport.probe(5.0)
        """
        conn = self._conn
        watch = conn.keepalive if conn is not None else None
        return watch is not None and watch.probe(timeout)

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until READY (True), or until ``timeout`` passes or the transport stops trying
        to connect (False)."""
        with self._lock:
            wait_until(self._lock, lambda: self.is_ready or not self._want or self._closed, timeout)
            return self.is_ready

    def add_status_listener(self, callback: Callable[[StatusChange], None]) -> Callable[[], None]:
        """Call ``callback(StatusChange)`` on every status change, in order; returns a remover.
        Listeners run on whichever thread changed the status: keep them short."""
        return self._board.add_listener(callback)

    def backoff_delay(self, attempt: int) -> float:
        """The wait before reconnect attempt ``attempt`` (0 = first retry): ``backoff_initial``
        doubled per attempt, capped at ``backoff_max``, minus up to ``backoff_jitter`` of it."""
        nominal = min(self.backoff_max, self.backoff_initial * float(1 << min(max(attempt, 0), 60)))
        return nominal * (1.0 - self.backoff_jitter * random.random())

    # ---------------------------------------------------------------- status plumbing

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

    def _start_runner_locked(self, previous: Optional[WsConnection] = None) -> None:
        self._want = True
        self._generation += 1
        gen = self._generation
        self._board.set_locked(ConnectionStatus.CONNECTING, manual=previous is not None)
        before = self._conn
        thread = threading.Thread(
            target=self._run, args=(gen, before), name=f"{self._name}-ws-{gen}", daemon=True
        )
        self._runner = thread
        thread.start()

    def _stop(self, manual_status: bool, timeout: float) -> Optional[WsConnection]:
        """Stop the runner and close the current connection; returns that connection."""
        deadline = time.monotonic() + max(0.05, timeout)
        with self._lock:
            self._want = not manual_status and not self._closed
            self._generation += 1  # the runner of the old generation no longer touches status
            conn = self._conn
            live = conn is not None and not conn.finished.is_set()
            if live and conn is not None:
                conn.manual = True
                conn.reconnecting = not manual_status
            if manual_status:
                if live and conn is not None and conn.opened:
                    self._board.set_locked(ConnectionStatus.CLOSING, manual=True)
                elif self._board.status is not ConnectionStatus.UNINITIALIZED or self._closed:
                    self._board.set_locked(ConnectionStatus.CLOSED, manual=True)
            elif live and conn is not None and conn.opened:
                self._board.set_locked(ConnectionStatus.CLOSING, manual=True)
            self._lock.notify_all()
        self._board.notify()
        if live and conn is not None:
            conn.send_close(1000, _MANUAL_REASON, self._send_lock)
            if threading.current_thread() is not conn.owner:
                conn.finished.wait(max(0.0, deadline - time.monotonic()))
                if not conn.finished.is_set():
                    conn.abort()
                    conn.finished.wait(max(0.0, deadline - time.monotonic()))
            if manual_status:
                with self._lock:
                    if not self._want:
                        self._board.set_locked(ConnectionStatus.CLOSED, manual=True, close=conn.info)
                self._board.notify()
        return conn

    def _await_closed(self, conn: WsConnection, gen: int) -> None:
        """Open a new connection only once the previous one's close was delivered (on_close).

        The previous runner may still be reading (a cut made from inside a message handler, a
        close reply the server is slow to send); its on_close tells the engine "connection lost",
        and delivered after this connection's READY it would make the engine forget the live
        connection: queries never answered, writes never sent."""
        owner = conn.owner
        if conn.finished.is_set() or owner is None or owner is threading.current_thread():
            return
        if not conn.finished.wait(_CLOSE_WAIT):
            conn.abort()  # wakes a reader blocked in recv; one inside a callback finishes it first
        while not conn.finished.wait(_CLOSE_WAIT) and owner.is_alive():
            with self._lock:
                if gen != self._generation or not self._want:
                    return

    def _run(self, gen: int, before: Optional[WsConnection] = None) -> None:
        if before is not None:
            self._await_closed(before, gen)
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
                            self._board.set_locked(ConnectionStatus.CLOSED)
                    self._board.notify()
                    return
            conn = WsConnection(gen)
            conn.owner = threading.current_thread()
            with self._lock:
                if gen != self._generation:
                    return
                self._conn = conn
                self._board.set_locked(ConnectionStatus.CONNECTING)
            self._board.notify()
            if provider_error is None and token is not None:
                self._connect_and_read(conn, str(token))
            else:
                conn.error = provider_error
            info = self._close_info(conn)
            conn.info = info
            if conn.opened:
                # A close this client asked for is routine; one it did not ask for is news.
                logger.log(logging.DEBUG if conn.manual else logging.INFO,
                           "connection closed (type=%s, code=%s, reconnect=%s)",
                           info.type, info.code, info.will_reconnect)
                if self._on_close is not None:
                    self._call_safely(self._on_close, info, what="on_close")
            else:
                logger.info("connection attempt failed: %s", info.error)
            conn.finished.set()
            with self._lock:
                if gen != self._generation:
                    return
                self._board.set_locked(ConnectionStatus.CLOSED, manual=conn.manual, close=info)
                if not info.will_reconnect:
                    self._want = False
                    self._lock.notify_all()
                    delay = None
                else:
                    # after a bad frame, the next try waits longer each time it happens again
                    attempt = max(self._attempt, self._strikes - 1) if conn.untrusted else self._attempt
                    delay = self.backoff_delay(attempt)
                    self._attempt += 1
                    self._retries += 1
            self._board.notify()
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

    def _connect_and_read(self, conn: WsConnection, token: str) -> None:
        url = build_socket_url(self.server_url, token, self.schema_hash)
        logger.debug("connecting to %s", redact(url))
        try:
            conn.open(
                url,
                timeout=self.connect_timeout,
                io_timeout=self.send_timeout,
                direct_host=self._host if self._loopback else None,
            )
        except Exception as e:
            conn.error = f"{type(e).__name__}: {redact(e, 300)}"
            return
        with self._lock:
            stale = conn.generation != self._generation or conn.close_sent
            if not stale:
                conn.opened = True
                self._attempt = 0
                self._board.set_locked(ConnectionStatus.OPEN)
        self._board.notify()
        watch = conn.keepalive = Keepalive(
            ping_interval=self.ping_interval, pong_timeout=self.pong_timeout,
            ready_timeout=self.connect_timeout, send_ping=lambda: self._ping(conn),
            on_dead=lambda why: self._drop(conn, why, untrusted=False), name=f"{self._name}-keepalive")
        try:
            if not stale:
                watch.start()
                conn.read(lambda data: self._on_text(conn, data), self._send_lock)
        finally:
            watch.stop()
            conn.ready = False
            conn.shutdown()

    def _on_text(self, conn: WsConnection, data: bytes) -> None:
        """One whole text frame, on the reader thread. Nothing raised here ends the reader:
        whatever goes wrong with a frame is reported and the connection resumed."""
        self.bytes_received += len(data)
        watch = conn.keepalive
        watch.arrived()
        paused = len(data) >= _LARGE_FRAME and gc.isenabled()
        if paused:
            # Decoding and applying a large frame allocates hundreds of thousands of objects
            # that all survive; the collector would scan them again and again (~40 % of the
            # work). Pause it for this frame; its next run catches up.
            gc.disable()
        try:
            self._on_frame(conn, data)
        except Exception as e:  # a frame boundary: the reader must survive any frame
            what = "a frame" if conn.manual else "a frame; dropping the connection"
            logger.error("could not handle %s: %s: %s", what, type(e).__name__, redact(e, 300),
                         exc_info=not isinstance(e, ProtocolError))
            if self._error_hook is not None:
                self._call_safely(self._error_hook, e, what="error hook")
            self._drop(conn, f"bad frame: {type(e).__name__}", untrusted=True)
        finally:
            if paused:
                gc.enable()
            watch.done()

    def _on_frame(self, conn: WsConnection, data: bytes) -> None:
        msg = conn.decode(data)
        if msg is None:
            return
        if isinstance(msg, Ready) and not conn.ready:
            conn.keepalive.ready()
        self._handle(conn, msg)

    def _drop(self, conn: WsConnection, reason: str, untrusted: bool) -> None:
        """Cut a connection that can't be trusted or is dead; the runner then reconnects."""
        if conn.manual or conn.close_sent or conn.finished.is_set():
            return
        with self._lock:
            if untrusted:
                self._strikes += 1
                conn.untrusted = True
        if conn.error is None:
            conn.error = reason
        conn.ready = False
        conn.abort()

    def _ping(self, conn: WsConnection) -> bool:
        with self._send_lock:
            if self._conn is not conn or not conn.ready or conn.close_sent:
                return False
            frames = encode_frames(Ping(client_timestamp=int(time.time() * 1000)), None)
            return self._write(conn, frames, Ping.TYPE)

    def _handle(self, conn: WsConnection, msg: Message) -> None:
        if isinstance(msg, Ready):
            with self._lock:
                conn.client_id = msg.client_id
                conn.ready = True
                attempts, self._retries = self._retries, 0
                self._lock.notify_all()
            if attempts:
                logger.info("connected to %s again (after %d attempt(s))", redact(self.server_url), attempts)
            else:
                logger.info("connected to %s", redact(self.server_url))
        elif isinstance(msg, SchemaRequest):
            schema = None
            if self._schema_provider is not None:
                try:
                    schema = self._schema_provider()
                except Exception as e:
                    logger.error(
                        "schema provider raised %s: %s", type(e).__name__, redact(e, 300), exc_info=True
                    )
            with self._send_lock:
                # Only message allowed before READY; never chunked (CHUNK needs a ready server).
                if not conn.close_sent:
                    self._write(conn, encode_frames(SchemaResponse(schema), None), SchemaResponse.TYPE)
        elif isinstance(msg, Close):
            logger.info("server closed the session: %s %s", msg.type, redact(msg.message or "", 300))
            conn.close_message = msg
            reason = json.dumps({"type": msg.type, "retry": msg.retry}, separators=(",", ":"))
            conn.send_close(1000, reason, self._send_lock)
            return
        if conn.manual:
            return  # the caller asked to disconnect: later messages are not theirs any more
        self._on_message(msg)  # raising: see _on_text
        if self._strikes and not isinstance(msg, (Ready, Pong, SchemaRequest)):
            with self._lock:
                self._strikes = 0  # data handled well: the next bad frame reconnects at once

    def _write(self, conn: WsConnection, frames: List[bytes], mtype: str) -> bool:
        """Write frames; the caller holds the send lock."""
        try:
            self.bytes_sent += conn.write(frames)
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

    def _close_info(self, conn: WsConnection) -> CloseInfo:
        ctype, retry = conn.end_reason()
        with self._lock:
            if conn.reconnecting:
                will = not self._closed
            else:
                will = retry and ctype not in NO_RETRY_CLOSE_TYPES and not conn.manual and self._want \
                    and not self._closed and conn.generation == self._generation
        return conn.close_info(will)
