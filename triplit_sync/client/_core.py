"""The client's core: the parts one TriplitClient owns and how they are wired together.

The session manager, the local storage, the sync engine, the transport, the callback dispatcher
and the data API each do one job and know nothing of the others; the core passes each the
functions it needs of the others, and does what involves several of them (a session begins, a
token is swapped on the live connection, a frame arrives, the process forks). The facade,
``TriplitClient``, checks arguments and documents the API; it calls the core.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Mapping, Optional, Set, Union

from .._util.redact import redact
from .._util.types import StorageKind
from ..errors import ClientClosedError, NoActiveSessionError, TokenExpiredError, TriplitError
from ..schema import Schema
from ..session import Session, SessionErrorType
from ..session.manager import RefreshHandler, SessionErrorCallback, SessionManager
from ..store import LocalStore
from ..sync import UNOWNED, SyncEngine
from ..sync.dispatch import Dispatcher
from ..transport import CloseInfo, ConnectionStatus, Transport, WebSocketTransport
from ..wire.messages import EntityData, Message, Ping, Ready, UpdateToken
from ._slots import forget_names_after_fork
from ._status_callbacks import StatusCallbacks, public_status
from ._storage import ClientStorage
from .data import DataAPI

__all__ = ["ClientCore", "TransportFactory"]

logger = logging.getLogger(__name__)

#: Builds the client's transport: ``factory(server_url, **options)`` with the keyword options
#: :class:`~triplit_sync.transport.WebSocketTransport` takes (see :class:`Transport`).
TransportFactory = Callable[..., Transport]

_cores: "weakref.WeakSet[ClientCore]" = weakref.WeakSet()


class ClientCore:
    """One client's parts: ``sessions``, ``storage`` (and its ``store``), ``engine``,
    ``transport``, ``dispatcher`` and ``data``, wired together. ``owner`` is the facade (named
    in the message a second client of the same name in this process gets)."""

    transport: Transport
    engine: SyncEngine

    def __init__(
        self,
        owner: Any,
        *,
        server_url: str,
        name: str,
        storage: StorageKind,
        data_dir: Optional[Union[str, "os.PathLike[str]"]],
        schema: Optional[Schema],
        persist_token: bool,
        ping_interval: Optional[float],
        pong_timeout: Optional[float],
        resume_margin: float,
        timeout: Optional[float],
        on_session_error: Optional[SessionErrorCallback],
        transport_factory: Optional[TransportFactory] = None,
        claims_path: Optional[str] = None,
        variables: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.server_url, self.timeout, self.schema = server_url, timeout, schema
        self._resume_margin = resume_margin
        self._ping_interval, self._pong_timeout = ping_interval, pong_timeout
        self._transport_factory: TransportFactory = transport_factory or WebSocketTransport
        self.lock = threading.RLock()
        self.closed = False
        self.http_client: Any = None
        self._connect_token: Optional[str] = None  # the token the current connection was opened with
        self._fork_pending: Optional[str] = None  # in a forked child until first use: what to start
        self.data = DataAPI(self, schema, variables)
        self.dispatcher = Dispatcher(error_hook=_callback_failed, name="triplit-callbacks")
        self.sessions = SessionManager(
            lock=self.lock, roles=schema.roles if schema is not None else None, server_url=server_url,
            persist_token=persist_token, submit=self._submit, on_refreshed=self._apply_refreshed_token,
            probe_expiry=self._probe_expiry, expired=self._expired, claims_path=claims_path)
        self.status_callbacks = StatusCallbacks(
            has_session=lambda: self.sessions.current is not None, transport_status=lambda: self.transport.status,
            submit=self._submit)
        self.sessions.on_change(self.status_callbacks.session_changed)
        if on_session_error is not None:
            self.sessions.on_error(on_session_error)
        self.storage = ClientStorage(owner, name, storage, server_url, data_dir, self._writes_moved_in)
        try:
            self.sessions.attach(self.storage.session_file, self.storage.load_stored_session())
        except BaseException:
            self.storage.release()  # e.g. a symlinked session.json: the slot must not stay taken
            raise
        self._init_engine()
        self.storage.start_drainer()
        self.transport = self._new_transport()
        _cores.add(self)

    # ------------------------------------------------------------------ what the data API reads

    @property
    def store(self) -> LocalStore:
        return self.storage.store

    @property
    def session(self) -> Optional[Session]:
        return self.sessions.current

    def wants_connection(self) -> bool:
        # Also while waiting out a reconnect backoff (status CLOSED): the session still wants the server.
        return self.sessions.current is not None and self.transport.wants_connection

    def check_open(self) -> None:
        """Every public call starts here: refuse a closed client, start a forked child's client."""
        if self.closed:
            raise ClientClosedError("this TriplitClient has been closed")
        if self._fork_pending is not None:
            self.start_after_fork()

    # ------------------------------------------------------------------ parts

    def _submit(self, callback: Callable[..., Any], *args: Any) -> None:
        self.dispatcher.submit(callback, *args)

    def _init_engine(self) -> None:
        stored = self.sessions.stored
        self.engine = SyncEngine(
            self.store, self.data.runner, self.dispatcher.submit,
            checkpoints=stored.get("checkpoints") if stored.get("identity") else None,
            on_checkpoints=self.sessions.save_checkpoints if self.storage.session_file else None,
            resume_margin=self._resume_margin,
            on_stall=self._stalled,
        )

    def _stalled(self) -> None:
        """A write batch waits too long for its answer: make the connection prove it is alive."""
        self.transport.probe()

    def _new_transport(self) -> Transport:
        schema = self.schema
        transport = self._transport_factory(
            self.server_url,
            token_provider=self._token_for_connect,
            on_message=self._on_message,
            on_close=self._on_close,
            ping_interval=self._ping_interval,
            pong_timeout=self._pong_timeout,
            schema_hash=schema.hash() if schema is not None else None,
            schema_provider=(lambda: schema.to_json()) if schema is not None else None,
            error_hook=_transport_failed,
        )
        self.status_callbacks.attach(transport)
        return transport

    @property
    def connection_status(self) -> ConnectionStatus:
        return public_status(self.sessions.current is not None, self.transport.status)

    # ------------------------------------------------------------------ sessions

    def resume_stored_session(self, auto_connect: bool, handler: Optional[RefreshHandler],
                              interval: Optional[float]) -> None:
        token = self.sessions.stored.get("token")
        if not token:
            return
        try:
            session = self.sessions.new(token, handler, interval)
        except TriplitError as e:
            logger.warning("not resuming the stored session: %s", e)
            return
        if session.is_expired() and handler is None:
            logger.info("the stored session's token has expired and there is no refresh handler; "
                        "call start_session() with a new token")
            return
        self._begin(session, auto_connect)

    def start_session(self, token: str, auto_connect: bool, handler: Optional[RefreshHandler],
                      interval: Optional[float]) -> None:
        session = self.sessions.new(token, handler, interval)
        if session.is_expired() and handler is None:
            raise TokenExpiredError("the token has expired; pass a fresh token or a refresh_handler")
        with self.lock:
            current = self.sessions.current
            same = current is not None and current.token == token
            if same and current is not None:
                current.refresh_handler, current.refresh_interval = handler, interval
                self.sessions.refresher.schedule(handler, interval, current.expires_at)
            elif current is not None:
                self._teardown_session()
        if same:
            if auto_connect:
                self.connect()
            return
        # Outside the lock: the reader thread may need it to finish the old connection.
        self.transport.disconnect()
        self._begin(session, auto_connect)

    def _begin(self, session: Session, auto_connect: bool) -> None:
        with self.lock:
            if self.sessions.stored.get("identity") not in (None, session.identity):
                self.engine.reset_checkpoints()  # another identity: its resume state is not ours
            self._take_pending_writes(session)
            self.sessions.begin(session)
            self.engine.set_owner(session.identity)
            self._save_session()
        if auto_connect:
            self.connect()

    def _take_pending_writes(self, session: Session) -> None:
        store = self.store
        if store.inflight_owner() not in (None, session.identity):
            # Another identity's unacknowledged batch goes back to its pending writes, to be
            # re-sent by its own session; left in flight it would block this session's writes.
            store.requeue_inflight()
        store.adopt_pending(UNOWNED, session.identity)  # writes made without a session

    def end_session(self) -> None:
        with self.lock:
            if self.sessions.current is None:
                return
            self._teardown_session()
        # Outside the lock: the reader thread may need it to finish the connection (checkpoints).
        self.transport.disconnect()
        with self.lock:
            if self.sessions.current is not None:
                return  # a new session started meanwhile and owns the resume state now
            # After the disconnect: no ENTITY_DATA can move a checkpoint any more.
            self.engine.reset_checkpoints()
            self.sessions.forget()

    def _teardown_session(self) -> None:
        """Forget the session (under the lock); the caller disconnects once it released the lock."""
        self.sessions.teardown()
        self.engine.set_owner(None)

    def set_token(self, token: str, still_current: Optional[Callable[[], bool]] = None) -> bool:
        """Validate and install a token of the current identity; False if ``still_current()``
        said the caller's refresh is out of date (a newer token, another or no session)."""
        with self.lock:
            current = self.sessions.current
            if still_current is not None and (current is None or not still_current()):
                logger.debug("discarding a refreshed token: the session changed meanwhile")
                return False
            if current is None:
                raise NoActiveSessionError("update_session_token needs a session; call start_session first")
            session = self.sessions.successor(token)
            self.sessions.current = session
            self.sessions.arm(session)
            self._save_session()
        if self.transport.is_ready:
            self.transport.send(UpdateToken(token))
        return True

    def _apply_refreshed_token(self, token: str) -> None:
        if not self.closed and self.set_token(token, self.sessions.refresher.still_current):
            logger.info("session token refreshed")

    # token expiry: the server notices only when a message passes, so probe it right after exp

    def _probe_expiry(self, session: Session) -> None:
        if self.sessions.current is session and self.transport.is_ready:
            self.transport.send(Ping(int(time.time() * 1000)))  # the server answers TOKEN_EXPIRED

    def _expired(self, session: Session) -> None:
        if self.sessions.current is not session or not self.transport.is_ready:
            return
        logger.info("the token expired and the server did not close the connection; closing it")
        # Closed first: the callback finds the client as a server-sent TOKEN_EXPIRED leaves it.
        self.transport.disconnect()
        self.sessions.emit_error(SessionErrorType.TOKEN_EXPIRED)

    def _save_session(self) -> None:
        self.sessions.save(self.engine.checkpoints())

    # ------------------------------------------------------------------ connection

    def connect(self) -> None:
        with self.lock:
            if self.sessions.current is None:
                raise NoActiveSessionError("connect needs a session; call start_session(token) first")
            self.sessions.allow_error_report()
        self.transport.connect()

    def wait_connected(self, timeout: Optional[float]) -> bool:
        if self._fork_pending is not None:
            self.start_after_fork()
        return self.transport.wait_ready(timeout)

    def _token_for_connect(self) -> Optional[str]:
        """Before every connection attempt (transport thread): the session's token, renewed by
        the refresher first when it has expired (session/manager.py)."""
        token = self.sessions.token_for_connect(lambda: not self.closed and self.transport.wants_connection)
        self._connect_token = token
        return token

    def _on_message(self, msg: Message) -> None:
        if isinstance(msg, Ready):
            session = self.sessions.current
            if session is not None and session.token != self._connect_token:
                # The token changed while this connection was opening: the server has the old one.
                self.transport.send(UpdateToken(session.token))
            self.engine.connection_ready(self.transport.send)
        elif isinstance(msg, EntityData):
            try:
                self.engine.handle_message(msg)
            except Exception as e:  # the transport logs it and resumes the connection
                self.engine.report_frame_problem(msg.for_queries, e)
                raise
        else:
            self.engine.handle_message(msg)

    def _on_close(self, info: CloseInfo) -> None:
        self.engine.connection_lost()
        if info.is_session_error and not info.manual:
            self.sessions.emit_error(SessionErrorType(info.type))

    def _writes_moved_in(self, collections: Set[str]) -> None:
        """Writes of a dead process arrived in the outbox: show them and send them."""
        self.engine.local_changes_applied(collections)

    # ------------------------------------------------------------------ lifecycle

    def clear(self) -> None:
        with self.lock:
            collections = self.store.collections()
            self.store.clear()
            self.engine.reset_checkpoints()
            self.engine.local_changes_applied(collections)
            reconnect = self.sessions.current is not None and self.transport.status in (
                ConnectionStatus.OPEN, ConnectionStatus.CONNECTING)
        if reconnect:
            # The server thinks this connection still holds everything it sent; a new
            # connection makes it send every live query's results again.
            self.transport.reconnect()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.sessions.stop_timers()
        self.engine.close()
        self.transport.close(timeout=1.0)
        self.dispatcher.close(timeout=0 if self.dispatcher.in_dispatcher_thread() else 1.0)
        if self.http_client is not None:
            self.http_client.close()
        self.storage.release()
        _cores.discard(self)

    def current_token(self) -> Optional[str]:
        session = self.sessions.current
        return None if session is None else session.token

    # ------------------------------------------------------------------ fork

    def after_fork_in_child(self) -> None:
        """The child of a fork owns no thread and must not touch the parent's socket or files.

        Until its first use it keeps an in-memory copy of the cache; the first call claims a
        slot of its own (durable cache and outbox, see ``_slots.py``) and connects its own
        socket, so a child that never uses the client (a fork before exec) opens nothing.
        """
        wanted = self.transport.wants_connection  # the parent's state, copied into this process
        self.lock = threading.RLock()
        self.sessions.after_fork(self.lock)
        self.storage.detach_after_fork()
        self.dispatcher = Dispatcher(error_hook=_callback_failed, name="triplit-callbacks")
        self._init_engine()
        session = self.sessions.current
        self.engine.set_owner(session.identity if session is not None else None)
        self.transport = self._new_transport()
        self.http_client = None
        self._connect_token = None
        self._fork_pending = "connect" if wanted else "timers"

    def _claim_after_fork(self) -> None:
        """A slot of this child's own replaces the in-memory copy, before any write is taken."""
        self.storage.claim_after_fork()
        session = self.sessions.current
        stored = self.storage.load_stored_session()
        if session is None or stored.get("identity") != session.identity:
            stored = {}  # another identity's resume state is not ours
        self.sessions.attach(self.storage.session_file, stored)
        self._init_engine()
        if session is not None:
            self._take_pending_writes(session)  # as in _begin: never block this identity's writes
            self.engine.set_owner(session.identity)
        self._save_session()
        self.storage.start_drainer()

    def start_after_fork(self) -> None:
        """First use in a forked child: a slot, the timers and the socket of its own."""
        with self.lock:
            pending = self._fork_pending
            if pending is None or self.closed:
                return
            if self.storage.kind == "sqlite":
                self._claim_after_fork()  # raises (and is tried again next call) if no slot is free
            self._fork_pending = None
            session = self.sessions.current
            if session is None:
                return
            self.sessions.arm(session)
        if pending == "connect":
            self.transport.connect()


def _callback_failed(error: BaseException) -> None:
    logger.error("a callback raised %s: %s", type(error).__name__, redact(str(error)))


def _transport_failed(error: BaseException) -> None:
    # The transport has logged it (a bad frame at ERROR, with what it did about it); the
    # subscriptions a frame was for heard of it through on_error.
    logger.debug("transport reported %s: %s", type(error).__name__, redact(str(error)))


def _after_fork() -> None:
    forget_names_after_fork()
    for core in list(_cores):
        if not core.closed:
            try:
                core.after_fork_in_child()
            except Exception:  # pragma: no cover - never break the child's start
                logger.exception("could not reset a client after fork")


def _close_all_at_exit() -> None:
    for core in list(_cores):
        try:
            core.close()
        except Exception:  # pragma: no cover
            logger.debug("closing a client at exit failed", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
atexit.register(_close_all_at_exit)
