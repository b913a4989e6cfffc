"""TriplitClient: the public face of the client. It checks arguments, documents the API and
calls the client's core (``_core.py``), which owns and wires the parts.

    from triplit_sync import TriplitClient

    with TriplitClient("http://localhost:6543", token=token) as client:
        client.insert("todos", {"text": "buy milk"})
        print(client.fetch(client.query("todos")))
"""

from __future__ import annotations

import copy
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from .._util.redact import redact
from .._util.timeouts import DEFAULT, DEFAULT_TIMEOUT, TimeoutArg, check_timeout, resolve
from .._util.types import StorageKind
from .._util.urls import as_http_url, is_http_url
from ..errors import WriteError
from ..query import Query
from ..schema import Schema, SchemaArg, load_schema
from ..session import Session, SessionInfo
from ..session.manager import RefreshHandler, SessionErrorCallback, SessionManager
from ..store import LocalStore
from ..sync import RejectedWrite, Subscription, SyncEngine, WriteOutcome
from ..sync.dispatch import Dispatcher
from ..transport import ConnectionStatus, Transport, check_pong_timeout
from ._changes import ChangesStream, RowChanges
from ._core import ClientCore, TransportFactory
from ._data_more import MoreData
from ._folder import default_data_dir, default_name
from ._pages import ExpandingSubscription, Page, PagedSubscription
from ._status import QueryState, StatusSubscription
from .data import DataAPI, FetchPolicy, PendingWrite, QueryArg, Row, RowsStream, Transaction

__all__ = ["TriplitClient", "default_data_dir"]

logger = logging.getLogger(__name__)


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
    ``timeout``; then it raises :class:`~triplit_sync.TriplitTimeoutError`. ``transport_factory``
    replaces the websocket transport (a fake one in tests; the interface is
    :class:`~triplit_sync.transport.Transport`).

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
        transport_factory: Optional[TransportFactory] = None,
        claims_path: Optional[str] = None,
        variables: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if isinstance(server_url, str):
            server_url = as_http_url(server_url)  # the rule HttpClient follows too
        if not is_http_url(server_url):
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
        if transport_factory is not None and not callable(transport_factory):
            raise TypeError(f"transport_factory must be callable, not {type(transport_factory).__name__}")
        self.server_url = server_url.rstrip("/")
        self.name = name or default_name(self.server_url)
        self.persist_token = persist_token
        self.storage = storage
        self._core = ClientCore(
            self, server_url=self.server_url, name=self.name, storage=storage, data_dir=data_dir,
            schema=load_schema(schema), persist_token=persist_token, ping_interval=ping_interval,
            pong_timeout=check_pong_timeout(ping_interval, pong_timeout), resume_margin=float(resume_margin),
            timeout=check_timeout(timeout), on_session_error=on_session_error,
            transport_factory=transport_factory, claims_path=claims_path, variables=variables)
        try:
            if token is not None:
                self.start_session(token, auto_connect=auto_connect, refresh_handler=refresh_handler,
                                   refresh_interval=refresh_interval)
            else:
                self._core.resume_stored_session(auto_connect, refresh_handler, refresh_interval)
        except BaseException:
            # A bad token: release the name at once, or re-running the call with a good one
            # (a notebook cell) would find the name still open in this process.
            self.close()
            raise

    # ------------------------------------------------------------------ state

    @property
    def session(self) -> Optional[SessionInfo]:
        """The current session's claims, roles, expiry and status; ``None`` without a session."""
        session = self._core.session
        return None if session is None else session.info(self.connection_status.value)

    @property
    def connection_status(self) -> ConnectionStatus:
        """UNINITIALIZED without a session, else the socket's CONNECTING / OPEN / CLOSING / CLOSED."""
        return self._core.connection_status

    @property
    def folder(self) -> Optional[Path]:
        """The slot folder holding this client's local database; ``None`` with memory storage
        (and in a forked child until its first call claims a slot)."""
        return self._core.storage.folder

    @property
    def closed(self) -> bool:
        return self._core.closed

    # ------------------------------------------------------------------ sessions

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
        self._core.check_open()
        _check_refresh_options(refresh_handler, refresh_interval)
        self._core.start_session(token, auto_connect, refresh_handler, refresh_interval)

    def end_session(self) -> None:
        """End the session: disconnect, stop refreshing, forget the token and resume checkpoints.

        The local database stays (``clear()`` empties it: ``end_session(); clear()`` is a
        logout). Pending writes stay with the identity that made them and are sent only when
        a session of that identity starts again.
        """
        self._core.check_open()
        self._core.end_session()

    def update_session_token(self, token: str) -> None:
        """Swap in a fresh token for the same identity, on the live connection if there is one.

        Raises at the call: :class:`NoActiveSessionError`, :class:`TokenDecodingError`,
        :class:`TokenExpiredError`, or :class:`SessionRolesMismatchError` when the token's roles
        differ from the session's (a different user needs :meth:`start_session`).
        """
        self._core.check_open()
        self._core.set_token(token)

    def on_session_error(self, callback: SessionErrorCallback) -> Callable[[], None]:
        """Call ``callback(SessionErrorType)`` on the callback thread when the server ends the
        session (UNAUTHORIZED, SCHEMA_MISMATCH, TOKEN_EXPIRED, ROLES_MISMATCH). The client then
        stays disconnected; the callback may call ``start_session``, ``end_session`` or ``clear``.
        Returns a function that removes the callback."""
        return self._core.sessions.on_error(callback)

    def on_refresh_error(self, callback: Callable[[BaseException], Any]) -> Callable[[], None]:
        """Call ``callback(error)`` on the callback thread when the refresh handler fails (it is retried)."""
        return self._core.sessions.on_refresh_error(callback)

    # ------------------------------------------------------------------ connection

    def connect(self) -> None:
        """Connect with the session's token (in the background). Raises without a session."""
        self._core.check_open()
        self._core.connect()

    def on_connection_status_change(self, callback: Callable[[ConnectionStatus], Any],
                                    run_immediately: bool = False) -> Callable[[], None]:
        """Call ``callback(ConnectionStatus)`` on the callback thread each time
        :attr:`connection_status` changes (the connection drops, reconnects, a session starts or
        ends); with ``run_immediately`` also once now with the current status. Returns a function
        that removes the callback.

            client.on_connection_status_change(lambda status: print("connection:", status.value))
        """
        return self._core.status_callbacks.add(callback, run_immediately)

    def disconnect(self) -> None:
        """Close the connection; the session stays and :meth:`connect` resumes it."""
        self._core.check_open()
        self._core.transport.disconnect()

    def wait_connected(self, timeout: TimeoutArg = DEFAULT) -> bool:
        """Block until the server said READY (True) or ``timeout`` passed / no connection is wanted (False).

        ``timeout`` defaults to the client's ``timeout``; ``None`` waits without end."""
        return self._core.wait_connected(resolve(timeout, self._core.timeout))

    # ------------------------------------------------------------------ lifecycle

    def clear(self, *, full: bool = False) -> None:
        """Empty the local database: cached entities, pending writes and resume checkpoints;
        with ``full=True`` also the rejected writes kept for a retry (:meth:`rejected_writes`)
        and every other record of the local database.

        Live subscriptions stay and are filled again from the server. Unlike JS
        ``clear({full: true})``, a full clear keeps the client's schema (it was given to the
        constructor) and its live subscriptions: nothing stops silently.

            client.end_session(); client.clear(full=True)   # a logout that leaves nothing behind
        """
        if not isinstance(full, bool):
            raise TypeError(f"full must be a bool, not {type(full).__name__}")
        self._core.check_open()
        kept = [] if full else self._core.engine.own.rejections.snapshot()
        self._core.clear()
        self._core.engine.own.rejections.restore(kept)

    def close(self) -> None:
        """Disconnect, stop every thread and timer, and release the local database. Idempotent."""
        self._core.close()

    def __enter__(self) -> "TriplitClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        session = self._core.session
        who = f" identity={session.identity}" if session is not None else ""
        return (f"<TriplitClient {self.server_url!r} name={self.name!r} storage={self.storage}"
                f" status={self.connection_status.value}{who}>")

    # ------------------------------------------------------------------ data (DataAPI has the docs)

    def query(self, collection: str) -> Query:
        return self._core.data.query(collection)

    def fetch(self, query: QueryArg, policy: FetchPolicy = "local-first",
              timeout: TimeoutArg = DEFAULT) -> List[Row]:
        return self._core.data.fetch(query, policy, timeout)

    def fetch_one(self, query: QueryArg, policy: FetchPolicy = "local-first",
                  timeout: TimeoutArg = DEFAULT) -> Optional[Row]:
        return self._core.data.fetch_one(query, policy, timeout)

    def fetch_by_id(self, collection: str, entity_id: str, policy: FetchPolicy = "local-first",
                    timeout: TimeoutArg = DEFAULT) -> Optional[Row]:
        return self._core.data.fetch_by_id(collection, entity_id, policy, timeout)

    def subscribe(
        self,
        query: QueryArg,
        on_results: Callable[[List[Row]], Any],
        on_error: Optional[Callable[[BaseException], Any]] = None,
        *,
        local_only: bool = False,
        on_remote_fulfilled: Optional[Callable[[], Any]] = None,
    ) -> Subscription:
        return self._core.data.subscribe(query, on_results, on_error, local_only=local_only,
                                    on_remote_fulfilled=on_remote_fulfilled)

    def watch(self, query: QueryArg, *, timeout: Optional[float] = None, local_only: bool = False) -> "RowsStream":
        return self._core.data.watch(query, timeout=timeout, local_only=local_only)

    def insert(self, collection: str, entity: Mapping[str, Any]) -> Row:
        return self._core.data.insert(collection, entity)

    def update(self, collection: str, entity_id: str,
               changes: Union[Mapping[str, Any], Callable[[Dict[str, Any]], Any]]) -> None:
        self._core.data.update(collection, entity_id, changes)

    def delete(self, collection: str, entity_id: str) -> None:
        self._core.data.delete(collection, entity_id)

    def transact(self) -> "Transaction":
        return self._core.data.transact()

    def wait_for_sync(self, timeout: TimeoutArg = DEFAULT) -> None:
        self._core.data.wait_for_sync(timeout)

    def pending_changes(self) -> List[PendingWrite]:
        return self._core.data.pending_changes()

    def on_sync_error(self, callback: Callable[[WriteError], Any]) -> Callable[[], None]:
        return self._core.data.on_sync_error(callback)

    def clear_pending_changes(self, collection: Optional[str] = None, entity_id: Optional[str] = None) -> None:
        self._core.data.clear_pending_changes(collection, entity_id)

    def write_outcome(self, collection: str, entity_id: str) -> WriteOutcome:
        return self._core.data.more.write_outcome(collection, entity_id)

    def on_entity_sync(self, collection: str, entity_id: str, on_success: Optional[Callable[[], Any]] = None,
                       on_error: Optional[Callable[[WriteError], Any]] = None) -> Callable[[], None]:
        return self._core.data.more.on_entity_sync(collection, entity_id, on_success, on_error)

    def rejected_writes(self) -> List[RejectedWrite]:
        return self._core.data.more.rejected_writes()

    def is_pending(self, collection: str, entity_id: str) -> bool:
        return self._core.data.more.is_pending(collection, entity_id)

    def subscribe_with_status(self, query: QueryArg, on_state: Callable[[QueryState], Any], *,
                              local_only: bool = False) -> StatusSubscription:
        return self._core.data.more.subscribe_with_status(query, on_state, local_only=local_only)

    def subscribe_background(self, query: QueryArg, *, on_fulfilled: Optional[Callable[[], Any]] = None,
                             on_error: Optional[Callable[[BaseException], Any]] = None) -> Subscription:
        return self._core.data.more.subscribe_background(query, on_fulfilled=on_fulfilled, on_error=on_error)

    def subscribe_changes(self, query: QueryArg, on_changes: Callable[[RowChanges], Any],
                          on_error: Optional[Callable[[BaseException], Any]] = None, *, local_only: bool = False,
                          on_remote_fulfilled: Optional[Callable[[], Any]] = None) -> Subscription:
        return self._core.data.more.subscribe_changes(query, on_changes, on_error, local_only=local_only,
                                                 on_remote_fulfilled=on_remote_fulfilled)

    def watch_changes(self, query: QueryArg, *, timeout: Optional[float] = None,
                      local_only: bool = False) -> ChangesStream:
        return self._core.data.more.watch_changes(query, timeout=timeout, local_only=local_only)

    def subscribe_pages(self, query: QueryArg, on_page: Callable[[Page], Any],
                        on_error: Optional[Callable[[BaseException], Any]] = None, *,
                        page_size: Optional[int] = None) -> PagedSubscription:
        return self._core.data.more.subscribe_pages(query, on_page, on_error, page_size=page_size)

    def subscribe_expanding(self, query: QueryArg, on_results: Callable[[Page], Any],
                            on_error: Optional[Callable[[BaseException], Any]] = None, *,
                            page_size: Optional[int] = None) -> ExpandingSubscription:
        return self._core.data.more.subscribe_expanding(query, on_results, on_error, page_size=page_size)

    def get_schema(self) -> Optional[Schema]:
        return self._core.data.more.get_schema()

    # One text per method: help(TriplitClient.fetch) shows the data API's docstring.
    for _source, _names in ((DataAPI, ("query", "fetch", "fetch_one", "fetch_by_id", "subscribe", "watch",
                                       "insert", "update", "delete", "transact", "wait_for_sync",
                                       "pending_changes", "on_sync_error", "clear_pending_changes")),
                            (MoreData, ("write_outcome", "on_entity_sync", "rejected_writes", "is_pending",
                                        "subscribe_with_status", "subscribe_background", "subscribe_changes",
                                        "watch_changes", "subscribe_pages", "subscribe_expanding", "get_schema"))):
        for _name in _names:
            vars()[_name].__doc__ = getattr(_source, _name).__doc__
    del _source, _names, _name

    # ------------------------------------------------------------------ http

    @property
    def http(self) -> Any:
        """An :class:`~triplit_sync.http.HttpClient` that uses this session's current token."""
        core = self._core
        with core.lock:
            if core.http_client is None:
                from ..http import HttpClient

                core.http_client = HttpClient(self.server_url, core.current_token, schema=core.schema,
                                              claims_path=core.sessions.claims_path)
            return core.http_client

    # ------------------------------------------------------------------ global variables

    @property
    def global_variables(self) -> Dict[str, Any]:
        """The global variables (a copy), as queries see them (datetimes as ISO strings, sets as lists)."""
        return copy.deepcopy(dict(self._core.data.global_variables))

    def update_global_variables(self, variables: Mapping[str, Any]) -> None:
        """Replace the global variables, which queries use as ``$global.<name>``.

        Each query takes the values current when it is fetched or subscribed, and so does the
        server (they are written into the query it is sent); live subscriptions keep theirs:
        subscribe again for the new ones. Raises TypeError for a value that is not JSON, a
        datetime or a set.

            client.update_global_variables({"team": "blue"})
            client.fetch(client.query("todos").where("team", "=", "$global.team"))
        """
        self._core.check_open()
        self._core.data.update_global_variables(variables)

    # ------------------------------------------------------------------ for tests and debugging

    @property
    def _engine(self) -> SyncEngine:
        return self._core.engine

    @property
    def _transport(self) -> Transport:
        return self._core.transport

    @property
    def _store(self) -> LocalStore:
        return self._core.store

    @property
    def _dispatcher(self) -> Dispatcher:
        return self._core.dispatcher

    @property
    def _sessions(self) -> SessionManager:
        return self._core.sessions

    @property
    def _session(self) -> Optional[Session]:
        return self._core.session

    @property
    def _timeout(self) -> Optional[float]:
        return self._core.timeout


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
