"""TriplitClient: the facade. Sessions and the connection live here; the data API in data.py.

    from triplit_sync import TriplitClient

    with TriplitClient("http://localhost:6543", token=token) as client:
        client.insert("todos", {"text": "buy milk"})
        print(client.fetch(client.query("todos")))
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import re
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Union
from urllib.parse import urlsplit

from .._util.timeouts import DEFAULT, DEFAULT_TIMEOUT, TimeoutArg, check_timeout, resolve
from .._util.types import StorageKind
from ..errors import ClientClosedError, NoActiveSessionError, TokenExpiredError, TriplitError, WriteError
from ..http._transport import as_http_url
from ..query import Query
from ..schema.model import Schema, SchemaArg, load_schema
from ..session import Session, SessionErrorType, SessionInfo
from ..session.manager import RefreshHandler, SessionErrorCallback, SessionManager
from ..store import LocalStore
from ..sync import UNOWNED, Subscription, SyncEngine
from ..sync.dispatch import Dispatcher
from ..transport._keepalive import check_pong_timeout
from ..transport.websocket import CloseInfo, ConnectionStatus, WebSocketTransport
from ..wire.messages import EntityData, Message, Ping, Ready, UpdateToken, redact
from ._folder import default_data_dir, default_name
from ._slots import forget_names_after_fork
from ._status_callbacks import StatusCallbacks
from ._storage import ClientStorage
from .data import (
    DataAPI,
    FetchPolicy,
    PendingWrite,
    QueryArg,
    Row,
    RowsStream,
    Transaction,
)

__all__ = ["TriplitClient", "default_data_dir"]

logger = logging.getLogger(__name__)

_clients: "weakref.WeakSet[TriplitClient]" = weakref.WeakSet()


class TriplitClient:
    """A client for one Triplit server, with a local database and a session.

    A ``token`` starts a session at once (and connects unless ``auto_connect=False``); without
    one the client works locally until :meth:`start_session`. With ``storage="sqlite"`` (the
    default) the local database, the outbox and the session live in
    ``<data_dir>/<name>/`` and a restarted process picks up where the last one stopped.
    Several processes may use one ``name`` at once (each gets a slot of its own, and writes
    left by one that died are sent by the next); a forked child claims its own slot on first use.

        client = TriplitClient("https://triplit.example.com", token=token,
                               refresh_handler=get_fresh_token)
        client.on_session_error(lambda error: print("session ended:", error))

    Arguments: ``refresh_handler`` returns a new token (called 1 s before ``exp``, or every
    ``refresh_interval`` seconds); ``schema`` is a :class:`~triplit_sync.schema.Schema`, a dict
    in the server's JSON format or the path of such a file; ``name`` picks the local folder
    (default: derived from the server URL); ``persist_token=False`` keeps the token out of
    ``session.json``; ``ping_interval`` (default 15 s; ``None`` turns pings off) and ``pong_timeout`` (default 10 s,
    at most ``ping_interval``) is how long a ping may go unanswered before the connection is
    dropped and resumed, so a silent connection is noticed within ``ping_interval +
    pong_timeout`` seconds. ``resume_margin`` (seconds, default
    0) makes every resume ask for changes from that much before its checkpoint: only needed
    for a server on lmdb or sqlite-worker storage, or one whose clock can step back (see
    ``_resume.py``); it costs re-receiving what changed in that window. ``timeout`` (seconds,
    default 30, ``None`` for none) is how long a call that waits on the server (``fetch`` that
    asks the server, ``wait_for_sync``, ``wait_connected``) waits unless given its own
    ``timeout``; then it raises :class:`~triplit_sync.TriplitTimeoutError`.

    ``claims_path`` (dotted, as the server's ``claimsPath``, e.g. an Auth0 namespace) is where
    tokens of an identity provider keep their Triplit claims: roles, identity, ``$session`` /
    ``$token`` and ``session.claims`` come from there, the expiry from the top-level ``exp``.
    ``variables`` are the global variables (``$global.<name>`` in queries; see
    :meth:`update_global_variables`).
    """

    def __init__(
        self,
        server_url: str,
        token: Optional[str] = None,
        *,
        auto_connect: bool = True,
        refresh_handler: Optional[RefreshHandler] = None,
        refresh_interval: Optional[float] = None,
        on_session_error: Optional[SessionErrorCallback] = None,
        schema: SchemaArg = None,
        storage: StorageKind = "sqlite",
        name: Optional[str] = None,
        data_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        persist_token: bool = True,
        ping_interval: Optional[float] = 15.0,
        pong_timeout: Optional[float] = None,
        resume_margin: float = 0.0,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        claims_path: Optional[str] = None,
        variables: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if isinstance(server_url, str):
            server_url = as_http_url(server_url)  # the rule HttpClient follows too
        if not isinstance(server_url, str) or urlsplit(server_url).scheme not in ("http", "https") \
                or not urlsplit(server_url).hostname:
            raise ValueError("server_url must be an http:// or https:// URL (ws:// and wss:// are read "
                             f"as http:// and https://), not {redact(repr(server_url))}")
        if storage not in ("sqlite", "memory"):
            raise ValueError(f"storage must be 'sqlite' or 'memory', not {storage!r}")
        if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name)
                                 or name in (".", "..")):
            raise ValueError(f"name must be a folder name of letters, digits, '.', '_' or '-', not {name!r}")
        _check_refresh_options(refresh_handler, refresh_interval)
        if on_session_error is not None and not callable(on_session_error):
            raise TypeError("on_session_error must be callable")
        if isinstance(resume_margin, bool) or not isinstance(resume_margin, (int, float)) \
                or not 0 <= resume_margin <= 3600:
            raise ValueError(f"resume_margin must be a number of seconds from 0 to 3600, not {resume_margin!r}")
        self._resume_margin = float(resume_margin)
        self._pong_timeout = check_pong_timeout(ping_interval, pong_timeout)
        self._timeout = check_timeout(timeout)
        self.server_url = server_url.rstrip("/")
        self.name = name or default_name(self.server_url)
        self.persist_token = persist_token
        self.storage = storage
        self._schema: Optional[Schema] = load_schema(schema)
        self._data = DataAPI(_DataOwner(self), self._schema, variables)
        self._lock = threading.RLock()
        self._closed = False
        self._http: Any = None
        self._connect_token: Optional[str] = None  # the token the current connection was opened with
        self._fork_pending: Optional[str] = None  # in a forked child until first use: what to start
        self._dispatcher = Dispatcher(error_hook=self._callback_failed, name="triplit-callbacks")
        self._sessions = SessionManager(
            lock=self._lock, roles=self._schema.roles if self._schema is not None else None,
            server_url=self.server_url, persist_token=persist_token, submit=self._submit,
            on_refreshed=self._apply_refreshed_token, probe_expiry=self._probe_expiry, expired=self._expired,
            claims_path=claims_path)
        self._status_callbacks = StatusCallbacks(
            has_session=lambda: self._session is not None, transport_status=lambda: self._transport.status,
            submit=self._submit)
        self._sessions.on_change(self._status_callbacks.session_changed)
        if on_session_error is not None:
            self._sessions.on_error(on_session_error)

        self._storage = ClientStorage(self, self.name, storage, self.server_url, data_dir, self._writes_moved_in)
        try:
            self._sessions.attach(self._storage.session_file, self._storage.load_stored_session())
        except BaseException:
            self._storage.release()  # e.g. a symlinked session.json: the slot must not stay taken
            raise

        self._init_engine()
        self._storage.start_drainer()
        self._ping_interval = ping_interval
        self._transport = self._new_transport(ping_interval)
        _clients.add(self)

        try:
            if token is not None:
                self.start_session(token, auto_connect=auto_connect, refresh_handler=refresh_handler,
                                   refresh_interval=refresh_interval)
            else:
                self._resume_stored_session(auto_connect, refresh_handler, refresh_interval)
        except BaseException:
            # A bad token: release the name at once, or re-running the call with a good one
            # (a notebook cell) would find the name still open in this process.
            self.close()
            raise

    # ------------------------------------------------------------------ construction helpers

    @property
    def _store(self) -> LocalStore:
        return self._storage.store

    @property
    def _session(self) -> Optional[Session]:
        return self._sessions.current

    @property
    def folder(self) -> Optional[Path]:
        """The slot folder holding this client's local database; ``None`` with memory storage
        (and in a forked child until its first call claims a slot)."""
        return self._storage.folder

    def _submit(self, callback: Callable[..., Any], *args: Any) -> None:
        self._dispatcher.submit(callback, *args)

    def _init_engine(self) -> None:
        stored = self._sessions.stored
        identity = stored.get("identity")
        self._engine = SyncEngine(
            self._store, self._data.runner, self._dispatcher.submit,
            checkpoints=stored.get("checkpoints") if identity else None,
            on_checkpoints=self._sessions.save_checkpoints if self._storage.session_file else None,
            resume_margin=self._resume_margin,
            on_stall=self._stalled,
        )

    def _stalled(self) -> None:
        """A write batch waits too long for its answer: make the connection prove it is alive."""
        probe = getattr(self._transport, "probe", None)
        if probe is not None:
            probe()

    def _new_transport(self, ping_interval: Optional[float]) -> WebSocketTransport:
        schema = self._schema
        transport = WebSocketTransport(
            self.server_url,
            token_provider=self._token_for_connect,
            on_message=self._on_message,
            on_close=self._on_close,
            ping_interval=ping_interval,
            pong_timeout=self._pong_timeout,
            schema_hash=schema.hash() if schema is not None else None,
            schema_provider=(lambda: schema.to_json()) if schema is not None else None,
            error_hook=self._transport_failed,
        )
        self._status_callbacks.attach(transport)
        return transport

    def _resume_stored_session(
        self, auto_connect: bool, handler: Optional[RefreshHandler], interval: Optional[float]
    ) -> None:
        token = self._sessions.stored.get("token")
        if not token:
            return
        try:
            session = self._sessions.new(token, handler, interval)
        except TriplitError as e:
            logger.warning("not resuming the stored session: %s", e)
            return
        if session.is_expired() and handler is None:
            logger.info("the stored session's token has expired and there is no refresh handler; "
                     "call start_session() with a new token")
            return
        self._begin(session, auto_connect)

    # ------------------------------------------------------------------ sessions

    @property
    def session(self) -> Optional[SessionInfo]:
        """The current session's claims, roles, expiry and status; ``None`` without a session."""
        session = self._session
        return None if session is None else session.info(self.connection_status.value)

    @property
    def connection_status(self) -> ConnectionStatus:
        """UNINITIALIZED without a session, else the socket's CONNECTING / OPEN / CLOSING / CLOSED."""
        if self._session is None:
            return ConnectionStatus.UNINITIALIZED
        status = self._transport.status
        return ConnectionStatus.CLOSED if status is ConnectionStatus.UNINITIALIZED else status

    def start_session(
        self,
        token: str,
        *deprecated_auto_connect: bool,
        auto_connect: bool = True,
        refresh_handler: Optional[RefreshHandler] = None,
        refresh_interval: Optional[float] = None,
    ) -> None:
        """Start a session with ``token`` (ending any other) and connect unless ``auto_connect=False``.

        Raises :class:`TokenDecodingError` for a token that is not a JWT, and
        :class:`TokenExpiredError` for an expired one unless ``refresh_handler`` can renew it
        (it is then called before connecting). ``auto_connect`` is keyword-only; passing it
        positionally (``start_session(token, False)``) still works in this release and warns.

            client.start_session(token, refresh_handler=lambda: auth.fresh_token())
            client.start_session(token, auto_connect=False)
        """
        if deprecated_auto_connect:
            auto_connect = _positional_auto_connect(deprecated_auto_connect, auto_connect)
        self._check_open()
        _check_refresh_options(refresh_handler, refresh_interval)
        session = self._sessions.new(token, refresh_handler, refresh_interval)
        if session.is_expired() and refresh_handler is None:
            raise TokenExpiredError("the token has expired; pass a fresh token or a refresh_handler")
        with self._lock:
            current = self._session
            same = current is not None and current.token == token
            if same and current is not None:
                current.refresh_handler, current.refresh_interval = refresh_handler, refresh_interval
                self._sessions.refresher.schedule(refresh_handler, refresh_interval, current.expires_at)
            elif current is not None:
                self._teardown_session()
        if same:
            if auto_connect:
                self.connect()
            return
        # Outside the lock: the reader thread may need it to finish the old connection.
        self._transport.disconnect()
        self._begin(session, auto_connect)

    def _begin(self, session: Session, auto_connect: bool) -> None:
        with self._lock:
            if self._sessions.stored.get("identity") not in (None, session.identity):
                self._engine.reset_checkpoints()  # another identity: its resume state is not ours
            inflight = self._store.inflight()
            if inflight is not None and inflight[0] != session.identity:
                # Another identity's unacknowledged batch goes back to its pending writes, to be
                # re-sent by its own session; left in flight it would block this session's writes.
                self._store.requeue_inflight()
            self._store.adopt_pending(UNOWNED, session.identity)  # writes made without a session
            self._sessions.begin(session)
            self._engine.set_owner(session.identity)
            self._save_session()
        if auto_connect:
            self.connect()

    def end_session(self) -> None:
        """End the session: disconnect, stop refreshing, forget the token and resume checkpoints.

        The local database stays (``clear()`` empties it: ``end_session(); clear()`` is a
        logout). Pending writes stay with the identity that made them and are sent only when
        a session of that identity starts again.
        """
        self._check_open()
        with self._lock:
            if self._session is None:
                return
            self._teardown_session()
        # Outside the lock: the reader thread may need it to finish the connection (checkpoints).
        self._transport.disconnect()
        with self._lock:
            if self._session is not None:
                return  # a new session started meanwhile and owns the resume state now
            # After the disconnect: no ENTITY_DATA can move a checkpoint any more.
            self._engine.reset_checkpoints()
            self._sessions.forget()

    def _teardown_session(self) -> None:
        """Forget the session (under the lock); the caller disconnects once it released the lock."""
        self._sessions.teardown()
        self._engine.set_owner(None)

    def update_session_token(self, token: str) -> None:
        """Swap in a fresh token for the same identity, on the live connection if there is one.

        Raises at the call: :class:`NoActiveSessionError`, :class:`TokenDecodingError`,
        :class:`TokenExpiredError`, or :class:`SessionRolesMismatchError` when the token's roles
        differ from the session's (a different user needs :meth:`start_session`).
        """
        self._check_open()
        self._set_token(token)

    def _set_token(self, token: str, still_current: Optional[Callable[[], bool]] = None) -> bool:
        """Validate and install a token of the current identity; False if ``still_current()``
        said the caller's refresh is out of date (a newer token, another or no session)."""
        with self._lock:
            current = self._session
            if still_current is not None and (current is None or not still_current()):
                logger.debug("discarding a refreshed token: the session changed meanwhile")
                return False
            if current is None:
                raise NoActiveSessionError("update_session_token needs a session; call start_session first")
            session = self._sessions.successor(token)
            self._sessions.current = session
            self._sessions.arm(session)
            self._save_session()
        if self._transport.is_ready:
            self._transport.send(UpdateToken(token))
        return True

    def on_session_error(self, callback: SessionErrorCallback) -> Callable[[], None]:
        """Call ``callback(SessionErrorType)`` on the callback thread when the server ends the
        session (UNAUTHORIZED, SCHEMA_MISMATCH, TOKEN_EXPIRED, ROLES_MISMATCH). The client then
        stays disconnected; the callback may call ``start_session``, ``end_session`` or ``clear``.
        Returns a function that removes the callback."""
        return self._sessions.on_error(callback)

    def on_refresh_error(self, callback: Callable[[BaseException], Any]) -> Callable[[], None]:
        """Call ``callback(error)`` on the callback thread when the refresh handler fails (it is retried)."""
        return self._sessions.on_refresh_error(callback)

    def _apply_refreshed_token(self, token: str) -> None:
        if not self._closed and self._set_token(token, self._sessions.refresher.still_current):
            logger.info("session token refreshed")

    # token expiry: the server notices only when a message passes, so probe it right after exp

    def _probe_expiry(self, session: Session) -> None:
        if self._session is session and self._transport.is_ready:
            self._transport.send(Ping(int(time.time() * 1000)))  # the server answers TOKEN_EXPIRED

    def _expired(self, session: Session) -> None:
        if self._session is not session or not self._transport.is_ready:
            return
        logger.info("the token expired and the server did not close the connection; closing it")
        # Closed first: the callback finds the client as a server-sent TOKEN_EXPIRED leaves it.
        self._transport.disconnect()
        self._sessions.emit_error(SessionErrorType.TOKEN_EXPIRED)

    # ------------------------------------------------------------------ connection

    def connect(self) -> None:
        """Connect with the session's token (in the background). Raises without a session."""
        self._check_open()
        with self._lock:
            if self._session is None:
                raise NoActiveSessionError("connect needs a session; call start_session(token) first")
            self._sessions.allow_error_report()
        self._transport.connect()

    def on_connection_status_change(self, callback: Callable[[ConnectionStatus], Any],
                                    run_immediately: bool = False) -> Callable[[], None]:
        """Call ``callback(ConnectionStatus)`` on the callback thread each time
        :attr:`connection_status` changes (the connection drops, reconnects, a session starts or
        ends); with ``run_immediately`` also once now with the current status. Returns a function
        that removes the callback.

            client.on_connection_status_change(lambda status: print("connection:", status.value))
        """
        return self._status_callbacks.add(callback, run_immediately)

    def disconnect(self) -> None:
        """Close the connection; the session stays and :meth:`connect` resumes it."""
        self._check_open()
        self._transport.disconnect()

    def wait_connected(self, timeout: TimeoutArg = DEFAULT) -> bool:
        """Block until the server said READY (True) or ``timeout`` passed / no connection is wanted (False).

        ``timeout`` defaults to the client's ``timeout``; ``None`` waits without end."""
        timeout = resolve(timeout, self._timeout)
        if self._fork_pending is not None:
            self._start_after_fork()
        return self._transport.wait_ready(timeout)

    def _token_for_connect(self) -> Optional[str]:
        """Before every connection attempt (transport thread): the session's token, renewed by
        the refresher first when it has expired (session/manager.py)."""
        token = self._sessions.token_for_connect(lambda: not self._closed and self._transport.wants_connection)
        self._connect_token = token
        return token

    def _on_message(self, msg: Message) -> None:
        if isinstance(msg, Ready):
            session = self._session
            if session is not None and session.token != self._connect_token:
                # The token changed while this connection was opening: the server has the old one.
                self._transport.send(UpdateToken(session.token))
            self._engine.connection_ready(self._transport.send)
        elif isinstance(msg, EntityData):
            try:
                self._engine.handle_message(msg)
            except Exception as e:  # the transport logs it and resumes the connection
                self._engine.report_frame_problem(msg.for_queries, e)
                raise
        else:
            self._engine.handle_message(msg)

    def _on_close(self, info: CloseInfo) -> None:
        self._engine.connection_lost()
        if info.is_session_error and not info.manual:
            self._sessions.emit_error(SessionErrorType(info.type))

    # ------------------------------------------------------------------ persistence

    def _save_session(self) -> None:
        self._sessions.save(self._engine.checkpoints())

    def _writes_moved_in(self, collections: Set[str]) -> None:
        """Writes of a dead process arrived in the outbox: show them and send them."""
        self._engine.local_changes_applied(collections)

    # ------------------------------------------------------------------ lifecycle

    def clear(self) -> None:
        """Empty the local database: cached entities, pending writes and resume checkpoints.

        Live subscriptions stay and are filled again from the server.
        """
        self._check_open()
        with self._lock:
            collections = self._store.collections()
            self._store.clear()
            self._engine.reset_checkpoints()
            self._engine.local_changes_applied(collections)
            reconnect = self._session is not None and self._transport.status in (
                ConnectionStatus.OPEN, ConnectionStatus.CONNECTING)
        if reconnect:
            # The server thinks this connection still holds everything it sent; a new
            # connection makes it send every live query's results again.
            self._transport.reconnect()

    def close(self) -> None:
        """Disconnect, stop every thread and timer, and release the local database. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._sessions.stop_timers()
        self._engine.close()
        self._transport.close(timeout=1.0)
        if not self._dispatcher.in_dispatcher_thread():
            self._dispatcher.close(timeout=1.0)
        else:
            self._dispatcher.close(timeout=0)
        if self._http is not None:
            self._http.close()
        self._storage.release()
        _clients.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        """Every public call starts here: refuse a closed client, start a forked child's client."""
        if self._closed:
            raise ClientClosedError("this TriplitClient has been closed")
        if self._fork_pending is not None:
            self._start_after_fork()

    def __enter__(self) -> "TriplitClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        session = self._session
        who = f" identity={session.identity}" if session is not None else ""
        return (f"<TriplitClient {self.server_url!r} name={self.name!r} storage={self.storage}"
                f" status={self.connection_status.value}{who}>")

    def _callback_failed(self, error: BaseException) -> None:
        logger.error("a callback raised %s: %s", type(error).__name__, redact(str(error)))

    def _transport_failed(self, error: BaseException) -> None:
        # The transport has logged it (a bad frame at ERROR, with what it did about it); the
        # subscriptions a frame was for heard of it through on_error.
        logger.debug("transport reported %s: %s", type(error).__name__, redact(str(error)))

    # ------------------------------------------------------------------ data (DataAPI has the docs)

    def query(self, collection: str) -> Query:
        return self._data.query(collection)

    def fetch(self, query: QueryArg, policy: FetchPolicy = "local-first",
              timeout: TimeoutArg = DEFAULT) -> List[Row]:
        return self._data.fetch(query, policy, timeout)

    def fetch_one(self, query: QueryArg, policy: FetchPolicy = "local-first",
                  timeout: TimeoutArg = DEFAULT) -> Optional[Row]:
        return self._data.fetch_one(query, policy, timeout)

    def fetch_by_id(self, collection: str, entity_id: str, policy: FetchPolicy = "local-first",
                    timeout: TimeoutArg = DEFAULT) -> Optional[Row]:
        return self._data.fetch_by_id(collection, entity_id, policy, timeout)

    def subscribe(
        self,
        query: QueryArg,
        on_results: Callable[[List[Row]], Any],
        on_error: Optional[Callable[[BaseException], Any]] = None,
        *,
        local_only: bool = False,
        on_remote_fulfilled: Optional[Callable[[], Any]] = None,
    ) -> Subscription:
        return self._data.subscribe(query, on_results, on_error, local_only=local_only,
                                    on_remote_fulfilled=on_remote_fulfilled)

    def watch(self, query: QueryArg, *, timeout: Optional[float] = None, local_only: bool = False) -> "RowsStream":
        return self._data.watch(query, timeout=timeout, local_only=local_only)

    def insert(self, collection: str, entity: Mapping[str, Any]) -> Row:
        return self._data.insert(collection, entity)

    def update(self, collection: str, entity_id: str,
               changes: Union[Mapping[str, Any], Callable[[Dict[str, Any]], Any]]) -> None:
        self._data.update(collection, entity_id, changes)

    def delete(self, collection: str, entity_id: str) -> None:
        self._data.delete(collection, entity_id)

    def transact(self) -> "Transaction":
        return self._data.transact()

    def wait_for_sync(self, timeout: TimeoutArg = DEFAULT) -> None:
        self._data.wait_for_sync(timeout)

    def pending_changes(self) -> List[PendingWrite]:
        return self._data.pending_changes()

    def on_sync_error(self, callback: Callable[[WriteError], Any]) -> Callable[[], None]:
        return self._data.on_sync_error(callback)

    def clear_pending_changes(self, collection: Optional[str] = None, entity_id: Optional[str] = None) -> None:
        self._data.clear_pending_changes(collection, entity_id)

    for _name in ("query", "fetch", "fetch_one", "fetch_by_id", "subscribe", "watch", "insert", "update",
                  "delete", "transact", "wait_for_sync", "pending_changes", "on_sync_error",
                  "clear_pending_changes"):
        vars()[_name].__doc__ = getattr(DataAPI, _name).__doc__  # one text: help() shows DataAPI's
    del _name

    # ------------------------------------------------------------------ http

    @property
    def http(self) -> Any:
        """An :class:`~triplit_sync.http.HttpClient` that uses this session's current token."""
        with self._lock:
            if self._http is None:
                from ..http.client import HttpClient

                self._http = HttpClient(self.server_url, self._current_token, schema=self._schema,
                                        claims_path=self._sessions.claims_path)
            return self._http

    # ------------------------------------------------------------------ global variables

    @property
    def global_variables(self) -> Dict[str, Any]:
        """The global variables (a copy), as queries see them (datetimes as ISO strings, sets as lists)."""
        return copy.deepcopy(dict(self._data.global_variables))

    def update_global_variables(self, variables: Mapping[str, Any]) -> None:
        """Replace the global variables, which queries use as ``$global.<name>``.

        Each query takes the values current when it is fetched or subscribed, and so does the
        server (they are written into the query it is sent); live subscriptions keep theirs:
        subscribe again for the new ones. Raises TypeError for a value that is not JSON, a
        datetime or a set.

            client.update_global_variables({"team": "blue"})
            client.fetch(client.query("todos").where("team", "=", "$global.team"))
        """
        self._check_open()
        self._data.update_global_variables(variables)

    def _current_token(self) -> Optional[str]:
        session = self._session
        return None if session is None else session.token

    # ------------------------------------------------------------------ fork

    def _after_fork_in_child(self) -> None:
        """The child of a fork owns no thread and must not touch the parent's socket or files.

        Until its first use it keeps an in-memory copy of the cache; the first call claims a
        slot of its own (durable cache and outbox, see ``_slots.py``) and connects its own
        socket, so a child that never uses the client (a fork before exec) opens nothing.
        """
        wanted = self._transport.wants_connection  # the parent's state, copied into this process
        self._lock = threading.RLock()
        self._sessions.after_fork(self._lock)
        self._storage.detach_after_fork()
        self._dispatcher = Dispatcher(error_hook=self._callback_failed, name="triplit-callbacks")
        self._init_engine()
        self._engine.set_owner(self._session.identity if self._session is not None else None)
        self._transport = self._new_transport(self._ping_interval)
        self._http = None
        self._connect_token = None
        self._fork_pending = "connect" if wanted else "timers"

    def _claim_after_fork(self) -> None:
        """A slot of this child's own replaces the in-memory copy, before any write is taken."""
        self._storage.claim_after_fork()
        session = self._session
        stored = self._storage.load_stored_session()
        if session is None or stored.get("identity") != session.identity:
            stored = {}  # another identity's resume state is not ours
        self._sessions.attach(self._storage.session_file, stored)
        self._init_engine()
        if session is not None:
            if self._store.inflight_owner() not in (None, session.identity):
                self._store.requeue_inflight()  # as in _begin: never block this identity's writes
            self._store.adopt_pending(UNOWNED, session.identity)
            self._engine.set_owner(session.identity)
        self._save_session()
        self._storage.start_drainer()

    def _start_after_fork(self) -> None:
        """First use in a forked child: a slot, the timers and the socket of its own."""
        with self._lock:
            pending = self._fork_pending
            if pending is None or self._closed:
                return
            if self.storage == "sqlite":
                self._claim_after_fork()  # raises (and is tried again next call) if no slot is free
            self._fork_pending = None
            session = self._session
            if session is None:
                return
            self._sessions.arm(session)
        if pending == "connect":
            self._transport.connect()


class _DataOwner:
    """The client as its :class:`DataAPI` sees it (``data.DataOwner``): its current parts."""

    def __init__(self, client: TriplitClient) -> None:
        self._client = client

    @property
    def server_url(self) -> str:
        return self._client.server_url

    @property
    def timeout(self) -> Optional[float]:
        return self._client._timeout

    @property
    def store(self) -> LocalStore:
        return self._client._store

    @property
    def engine(self) -> SyncEngine:
        return self._client._engine

    @property
    def session(self) -> Optional[Session]:
        return self._client._sessions.current

    def wants_connection(self) -> bool:
        client = self._client
        # Also while waiting out a reconnect backoff (status CLOSED): the session still wants the server.
        return client._session is not None and client._transport.wants_connection

    def check_open(self) -> None:
        self._client._check_open()


def _positional_auto_connect(args: Any, keyword: bool) -> bool:
    """``auto_connect`` given positionally: the one value, with a DeprecationWarning at the caller's line."""
    if len(args) > 1:
        raise TypeError(f"start_session() takes one positional argument after the token, got {len(args)}")
    if keyword is not True:
        raise TypeError("start_session() got auto_connect both positionally and as a keyword")
    warnings.warn("start_session(token, auto_connect) with a positional bool is deprecated: pass "
                  "auto_connect=... as a keyword", DeprecationWarning, stacklevel=3)
    return bool(args[0])


def _check_refresh_options(handler: Optional[RefreshHandler], interval: Optional[float]) -> None:
    if handler is not None and not callable(handler):
        raise TypeError(f"refresh_handler must be callable, not {type(handler).__name__}")
    if interval is not None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ValueError(f"refresh_interval must be a positive number of seconds, not {interval!r}")
        if handler is None:
            raise ValueError("refresh_interval needs a refresh_handler")


def _after_fork() -> None:
    forget_names_after_fork()
    for client in list(_clients):
        if not client._closed:
            try:
                client._after_fork_in_child()
            except Exception:  # pragma: no cover - never break the child's start
                logger.exception("could not reset %r after fork", client)


def _close_all_at_exit() -> None:
    for client in list(_clients):
        try:
            client.close()
        except Exception:  # pragma: no cover
            logger.debug("closing %r at exit failed", client, exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
atexit.register(_close_all_at_exit)
