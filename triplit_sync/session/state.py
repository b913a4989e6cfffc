"""Sessions: who the client is (token, claims, roles), where that is kept, and token refresh.

- :class:`Session` holds the current token and what the client knows from it.
- :class:`SessionStore` is ``session.json`` in the client's folder: the server URL, the token
  (unless ``persist_token=False``), identity, roles and the per-query resume checkpoints.
  Written atomically (temp file, fsync, rename); a corrupt file is moved aside.
- :class:`TokenRefresher` calls the application's refresh handler on a daemon
  ``threading.Timer``: ``refresh_interval`` seconds apart, or 1 s before the token's ``exp``;
  a handler that fails is retried with backoff instead of spinning.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from .._util.redact import redact
from .._util.safefs import open_nofollow
from .tokens import Roles, decode_claims, expires_at, identity_key, match_roles

__all__ = [
    "ExpiryWatch",
    "SessionErrorType",
    "SessionInfo",
    "Session",
    "SessionStore",
    "TokenRefresher",
]

logger = logging.getLogger(__name__)

SESSION_FILE = "session.json"
_FORMAT_VERSION = 1


class SessionErrorType(str, Enum):
    """Why the server ended a session; a ``str``, so ``error == "TOKEN_EXPIRED"`` works."""

    UNAUTHORIZED = "UNAUTHORIZED"
    SCHEMA_MISMATCH = "SCHEMA_MISMATCH"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    ROLES_MISMATCH = "ROLES_MISMATCH"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SessionInfo:
    """What the client knows about its session (never the token itself).

    ``status`` is the connection status (``"OPEN"``, ``"CLOSED"``...).
    """

    claims: Mapping[str, Any]
    roles: Roles
    expires_at: Optional[_dt.datetime]
    status: str
    identity: str = field(repr=False)


class Session:
    """A token and what follows from it. The token never appears in ``repr``."""

    __slots__ = ("token", "claims", "roles", "identity", "refresh_handler", "refresh_interval")

    def __init__(
        self,
        token: str,
        role_definitions: Optional[Mapping[str, Any]],
        *,
        refresh_handler: Optional[Callable[[], Optional[str]]] = None,
        refresh_interval: Optional[float] = None,
    ) -> None:
        self.claims = decode_claims(token)
        self.token = token
        self.roles = match_roles(self.claims, role_definitions)
        self.identity = identity_key(self.claims, self.roles)
        self.refresh_handler = refresh_handler
        self.refresh_interval = refresh_interval

    @property
    def expires_at(self) -> Optional[float]:
        return expires_at(self.claims)

    def info(self, status: str) -> SessionInfo:
        exp = self.expires_at
        return SessionInfo(
            claims=dict(self.claims),
            roles={k: dict(v) for k, v in self.roles.items()},
            expires_at=None if exp is None else _dt.datetime.fromtimestamp(exp, _dt.timezone.utc),
            status=status,
            identity=self.identity,
        )

    def __repr__(self) -> str:
        return f"<Session identity={self.identity} roles={sorted(self.roles)} expires_at={self.expires_at}>"


class SessionStore:
    """``session.json`` in the client's folder; ``None`` data means no stored session."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / SESSION_FILE
        self._lock = threading.Lock()

    def load(self) -> Optional[Dict[str, Any]]:
        """The stored session, or ``None``. An unreadable file is moved aside with a warning."""
        with self._lock:
            try:
                raw = self._read()
            except FileNotFoundError:
                return None
            except OSError as e:
                logger.warning("cannot read %s (%s); starting a fresh session", self.path, e)
                return None
            try:
                data = json.loads(raw)
                if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
                    raise ValueError("not a triplit_sync session file of a known version")
                if not isinstance(data.get("checkpoints", {}), dict):
                    raise ValueError("checkpoints is not an object")
            except ValueError as e:
                aside = self.path.with_name(f"{SESSION_FILE}.corrupt-{int(time.time())}")
                try:
                    os.replace(self.path, aside)
                except OSError:
                    aside = self.path
                logger.warning("%s is unreadable (%s); moved it to %s and starting a fresh session",
                            self.path, e, aside.name)
                return None
            return data

    def _read(self) -> bytes:
        """The file's bytes, never through a symlink (another user's session must not become
        ours: :class:`StorageUnsafeError`); a file others could read is made 0600, with a WARNING."""
        fd = open_nofollow(self.path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if mode & 0o077 and hasattr(os, "fchmod"):
                logger.warning("%s had mode %o (it holds a token); made it 0600", self.path, mode)
                os.fchmod(fd, 0o600)
            return f.read()

    def save(self, data: Mapping[str, Any]) -> None:
        """Replace the file atomically: a crash leaves the old file or the new one, never half."""
        body = dict(data)
        body["version"] = _FORMAT_VERSION
        text = json.dumps(body, separators=(",", ":"))
        with self._lock:
            tmp = self.path.with_name(f".{SESSION_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                os.unlink(tmp)  # left by a killed process with this pid; O_EXCL below needs it gone
            except FileNotFoundError:
                pass
            # O_EXCL and O_NOFOLLOW: never write through a link planted at the temp name.
            fd = open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise

    def delete(self) -> None:
        with self._lock:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


class TokenRefresher:
    """Calls ``handler`` on a daemon timer and hands new tokens to ``apply``.

    ``apply(token)`` validates and installs the token (raising if it is unusable). A handler
    that raises, returns ``None``, or returns a token ``apply`` refuses is retried after 1 s,
    2 s, 4 s... (at most ``max_backoff``), and each failure goes to ``on_failure``. A refresh
    that finishes after :meth:`cancel` or a newer :meth:`schedule` is discarded.
    """

    def __init__(
        self,
        apply: Callable[[str], None],
        on_failure: Callable[[BaseException], None],
        *,
        lead_time: float = 1.0,
        min_delay: float = 1.0,
        first_backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        self._apply = apply
        self._on_failure = on_failure
        self.lead_time = lead_time
        self.min_delay = min_delay
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self._lock = threading.Lock()
        self._timer: Optional[threading.Timer] = None
        self._generation = 0
        self._firing = threading.local()  # the generation the current thread's handler call belongs to
        self._handler: Optional[Callable[[], Optional[str]]] = None

    def delay_for(self, exp: Optional[float], interval: Optional[float]) -> Optional[float]:
        """Seconds until the next call: the interval, else ``lead_time`` before ``exp`` (>= ``min_delay``)."""
        if interval is not None:
            return interval
        if exp is None:
            return None
        return max(exp - time.time() - self.lead_time, self.min_delay)

    def schedule(
        self,
        handler: Optional[Callable[[], Optional[str]]],
        interval: Optional[float],
        exp: Optional[float],
    ) -> None:
        """(Re)arm for a session; any earlier timer and in-flight refresh are discarded."""
        with self._lock:
            self._generation += 1
            self._cancel_timer()
            self._handler = handler
            if handler is None:
                return
            delay = self.delay_for(exp, interval)
            if delay is not None:
                self._arm(delay, self._generation, self.first_backoff)

    def cancel(self) -> None:
        """Stop for good (until the next :meth:`schedule`); a running handler's result is dropped."""
        with self._lock:
            self._generation += 1
            self._cancel_timer()
            self._handler = None

    def still_current(self) -> bool:
        """Inside ``apply``: True while no :meth:`schedule` / :meth:`cancel` came after this refresh began.

        ``apply`` should check it under the same lock its owner holds when it re-schedules or
        cancels, so that a refresh racing with a newer token or the session's end is dropped.
        """
        with self._lock:
            return getattr(self._firing, "generation", None) == self._generation

    @property
    def active(self) -> bool:
        with self._lock:
            return self._timer is not None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, delay: float, generation: int, backoff: float) -> None:
        timer = threading.Timer(delay, self._fire, args=(generation, backoff))
        timer.daemon = True
        timer.name = "triplit-token-refresh"
        self._timer = timer
        timer.start()

    def _fire(self, generation: int, backoff: float) -> None:
        with self._lock:
            if generation != self._generation or self._handler is None:
                return
            handler = self._handler
        error: Optional[BaseException] = None
        token: Optional[str] = None
        try:
            token = handler()
            if token is None:
                raise ValueError("the refresh handler returned None")
        except Exception as e:  # the handler is application code: anything can come out of it
            error = e
        with self._lock:
            if generation != self._generation:
                logger.debug("discarding a refresh that finished after the session changed")
                return
        if error is None and token is not None:
            self._firing.generation = generation
            try:
                self._apply(token)  # re-schedules through schedule(), which bumps the generation
                return
            except Exception as e:
                error = e
            finally:
                self._firing.generation = None
        with self._lock:
            if generation != self._generation:
                return  # apply failed because the session changed meanwhile: not a refresh failure
        logger.warning("token refresh failed (%s: %s); retrying in %.0f s", type(error).__name__,
                    redact(error, 300), backoff)  # application text: may quote a token
        try:
            self._on_failure(error)  # type: ignore[arg-type]
        finally:
            with self._lock:
                if generation == self._generation:
                    self._arm(backoff, generation, min(backoff * 2, self.max_backoff))


class ExpiryWatch:
    """Two daemon timers past a session token's ``exp``: ``probe`` soon after, ``give_up`` later.

    The server only notices an expired token when a message passes (PROTOCOL.md §1.5), so an
    idle connection would stay open long past ``exp``; probing (a PING) makes the server say
    TOKEN_EXPIRED, and giving up covers a server whose clock disagrees. A refreshed token
    re-arms the watch; :meth:`cancel` stops it.
    """

    def __init__(
        self,
        probe: Callable[[Session], None],
        give_up: Callable[[Session], None],
        *,
        probe_delay: float = 0.25,
        give_up_delay: float = 1.5,
    ) -> None:
        self._actions = ((probe_delay, probe), (give_up_delay, give_up))
        self._timers: List[threading.Timer] = []
        self._lock = threading.Lock()

    def arm(self, session: Session) -> None:
        self.cancel()
        exp = session.expires_at
        if exp is None:
            return
        with self._lock:
            for delay, action in self._actions:
                timer = threading.Timer(max(exp - time.time() + delay, 0.0), action, args=(session,))
                timer.daemon = True
                timer.name = "triplit-expiry"
                self._timers.append(timer)
                timer.start()

    def cancel(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
