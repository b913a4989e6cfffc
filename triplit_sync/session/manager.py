"""The client's session and what hangs on it: the token's refresh timer and expiry watch, the
callbacks that hear of session errors and refresh failures, and the session file.

The client owns one :class:`SessionManager` and tells it what happened (a token was given, the
server ended the session, checkpoints moved); the manager never touches the connection, the
store or the engine: it calls back the functions the client gave it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Optional

from .._util.callbacks import add_callback
from ..errors import SessionRolesMismatchError, TokenExpiredError
from ._file import SessionStore
from ._refresh import ExpiryWatch, TokenRefresher
from .state import Session, SessionErrorType
from .tokens import Roles, check_claims_path, roles_equivalent

__all__ = ["RefreshHandler", "SessionErrorCallback", "SessionManager"]

logger = logging.getLogger(__name__)

RefreshHandler = Callable[[], Optional[str]]
SessionErrorCallback = Callable[[SessionErrorType], Any]

#: How long after ``exp`` an idle connection is probed, and when the client gives up waiting
#: for the server to notice (PROTOCOL.md §1.5: the server only checks when a message passes).
EXPIRY_PROBE_DELAY = 0.25
EXPIRY_GIVE_UP_DELAY = 1.5
#: How often a connection attempt waiting for a refresh checks that it is still wanted.
_REFRESH_WAIT_SLICE = 0.5


class SessionManager:
    """The current :class:`Session` (or none), its timers, its error callbacks and its file.

    ``lock`` is the client's lock (the caller holds it around changes of ``current``);
    ``submit(callback, *args)`` runs a user callback on the client's callback thread;
    ``on_refreshed(token)`` installs a token the refresh handler returned;
    ``probe_expiry`` / ``expired`` are the expiry watch's two actions. ``claims_path`` is where
    external tokens keep the claims the server reads (see :func:`tokens.claims_at_path`).
    """

    def __init__(
        self,
        *,
        lock: threading.RLock,
        roles: Optional[Roles],
        server_url: str,
        persist_token: bool,
        submit: Callable[..., None],
        on_refreshed: Callable[[str], None],
        probe_expiry: Callable[[Session], None],
        expired: Callable[[Session], None],
        claims_path: Optional[str] = None,
    ) -> None:
        self.claims_path = check_claims_path(claims_path)
        self._lock = lock
        self._roles = roles
        self._server_url = server_url
        self._persist_token = persist_token
        self._submit = submit
        self._on_refreshed = on_refreshed
        self._probe_expiry, self._expired = probe_expiry, expired
        self.current: Optional[Session] = None
        #: What the session file holds (kept with memory storage too: whose checkpoints the engine holds).
        self.stored: Dict[str, Any] = {}
        self.file: Optional[SessionStore] = None
        self._error_callbacks: List[SessionErrorCallback] = []
        self._refresh_error_callbacks: List[Callable[[BaseException], Any]] = []
        self._error_sent = False  # one report per session error (until the next connect)
        self._change_listeners: List[Callable[[], None]] = []
        self._new_timers()

    def _new_timers(self) -> None:
        self.refresher = TokenRefresher(self._on_refreshed, self.refresh_failed)
        self.expiry = ExpiryWatch(self._probe_expiry, self._expired,
                                  probe_delay=EXPIRY_PROBE_DELAY, give_up_delay=EXPIRY_GIVE_UP_DELAY)

    # ------------------------------------------------------------------ the session

    def new(self, token: str, handler: Optional[RefreshHandler], interval: Optional[float]) -> Session:
        """A session for ``token`` (raises TokenDecodingError for a token that is not a JWT)."""
        return Session(token, self._roles, refresh_handler=handler, refresh_interval=interval,
                       claims_path=self.claims_path)

    def begin(self, session: Session) -> None:
        """Make ``session`` current and start its timers (under the client's lock)."""
        self.current = session
        self._error_sent = False
        self.arm(session)
        self._changed()

    def arm(self, session: Session) -> None:
        self.refresher.schedule(session.refresh_handler, session.refresh_interval, session.expires_at)
        self.expiry.arm(session)

    def successor(self, token: str) -> Session:
        """The session ``token`` makes for the current identity; raises if it may not replace it."""
        current = self.current
        assert current is not None
        session = self.new(token, current.refresh_handler, current.refresh_interval)
        if session.is_expired():
            raise TokenExpiredError("the new token has already expired")
        if not roles_equivalent(session.roles, current.roles):
            raise SessionRolesMismatchError(
                f"the new token's roles {sorted(session.roles)} differ from the session's "
                f"{sorted(current.roles)} (or capture other values); start a new session instead"
            )
        session.identity = current.identity  # the server treats it as the same session
        return session

    def token_for_connect(self, still_wanted: Callable[[], bool]) -> Optional[str]:
        """The token a connection attempt should use (transport thread); None: do not connect.

        An expired token with a refresh handler is renewed by the refresher, the handler's only
        caller: this asks it to refresh now and waits for a fresh token while ``still_wanted()``,
        through the refresher's own backoff when the handler fails (each failure reaches
        ``on_refresh_error`` once). Without a handler the expired token still goes to the server,
        the judge of expiry (clocks differ): it answers UNAUTHORIZED, which reaches
        ``on_session_error``.
        """
        while True:
            session = self.current
            if session is None:
                return None
            if session.refresh_handler is None or not session.is_expired():
                return session.token
            seen = self.refresher.attempts()
            if not self.refresher.renew_now() or not still_wanted():
                return None
            self.refresher.wait_attempt(seen, _REFRESH_WAIT_SLICE)

    def teardown(self) -> None:
        """Forget the session and stop its timers (under the client's lock)."""
        self.current = None
        self.stop_timers()
        self._changed()

    def stop_timers(self) -> None:
        self.refresher.cancel()
        self.expiry.cancel()

    # ------------------------------------------------------------------ callbacks

    def on_error(self, callback: SessionErrorCallback) -> Callable[[], None]:
        return add_callback(self._lock, self._error_callbacks, callback)

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` (on the changing thread, under the client's lock: keep it short)
        whenever a session begins or ends."""
        return add_callback(self._lock, self._change_listeners, listener)

    def _changed(self) -> None:
        for listener in list(self._change_listeners):
            try:
                listener()
            except Exception:  # our own listeners; never let one break a session change
                logger.exception("session change listener failed")

    def on_refresh_error(self, callback: Callable[[BaseException], Any]) -> Callable[[], None]:
        return add_callback(self._lock, self._refresh_error_callbacks, callback)

    def allow_error_report(self) -> None:
        """A new connection attempt: its session error may be reported again."""
        self._error_sent = False

    def emit_error(self, kind: SessionErrorType) -> None:
        with self._lock:
            if self._error_sent or self.current is None:
                return
            self._error_sent = True
            callbacks = list(self._error_callbacks)
        logger.warning("session error: %s", kind.value)
        for callback in callbacks:
            self._submit(callback, kind)

    def refresh_failed(self, error: BaseException) -> None:
        for callback in list(self._refresh_error_callbacks):
            self._submit(callback, error)

    # ------------------------------------------------------------------ the session file

    def attach(self, file: Optional[SessionStore], stored: Dict[str, Any]) -> None:
        """The session file of the slot the client holds now, and what it held."""
        self.file, self.stored = file, stored

    def save(self, checkpoints: Dict[str, Any]) -> None:
        """Write the current session (or its absence) with the engine's ``checkpoints``."""
        session = self.current
        data: Dict[str, Any] = {"server_url": self._server_url, "checkpoints": checkpoints}
        if session is not None:
            data["identity"] = session.identity
            data["roles"] = session.roles
            if self._persist_token:
                data["token"] = session.token
        self.stored = data
        if self.file is not None:
            self.file.save(data)

    def save_checkpoints(self, checkpoints: Dict[str, Any]) -> None:
        """The engine's checkpoint timer: persist ``checkpoints`` while a session exists."""
        if self.file is None or self.current is None:
            return
        with self._lock:
            self.save(checkpoints)

    def forget(self) -> None:
        """After end_session: nothing stored, the file deleted."""
        self.stored = {}
        if self.file is not None:
            self.file.delete()

    # ------------------------------------------------------------------ fork

    def after_fork(self, lock: threading.RLock) -> None:
        """In a forked child: the parent's timers did not survive; the file is the parent's."""
        self._lock = lock
        self.file, self.stored = None, {}
        self._new_timers()
