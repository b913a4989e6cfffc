"""Timers on a session's token: :class:`TokenRefresher` calls the application's refresh handler on
a daemon ``threading.Timer`` (``refresh_interval`` seconds apart, or 1 s before ``exp``; a handler
that fails is retried with backoff), :class:`ExpiryWatch` probes the server right after ``exp``.

The refresher is the only caller of the handler. A connection attempt that finds the token
expired asks it to refresh now (:meth:`TokenRefresher.renew_now`) and waits for the outcome
(:meth:`TokenRefresher.wait_attempt`) instead of calling the handler itself: two callers, each
with its own backoff, called a failing handler twice as often and retried on two clocks."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from .._util.redact import redact
from .._util.timers import OneShot
from .state import Session
from .tokens import expires_at

__all__ = ["ExpiryWatch", "TokenRefresher"]

logger = logging.getLogger(__name__)


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
        self._timer = OneShot("triplit-token-refresh")
        self._generation = 0
        self._firing = threading.local()  # the generation the current thread's handler call belongs to
        self._handler: Optional[Callable[[], Optional[str]]] = None
        self._running = False  # a handler call (or its apply) is under way
        self._retrying = False  # the armed timer is a failed attempt's retry: its backoff stands
        self._attempts = 0  # finished attempts, for wait_attempt
        self._changed = threading.Condition(self._lock)

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
            self._retrying = False
            self._changed.notify_all()
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
            self._retrying = False
            self._changed.notify_all()

    def renew_now(self) -> bool:
        """Call the handler now, on the timer thread, unless a call is under way or a failed one's
        retry is pending (the backoff stands). False without a handler."""
        with self._lock:
            if self._handler is None:
                return False
            if not self._running and not self._retrying:
                self._cancel_timer()
                self._arm(0.0, self._generation, self.first_backoff)
            return True

    def attempts(self) -> int:
        """How many handler calls have finished (a token for :meth:`wait_attempt`)."""
        with self._lock:
            return self._attempts

    def wait_attempt(self, seen: int, timeout: float) -> None:
        """Wait up to ``timeout`` s for an attempt after ``seen`` to finish, or a new schedule."""
        with self._lock:
            if self._attempts == seen:
                self._changed.wait(timeout)

    def still_current(self) -> bool:
        """Inside ``apply``: True while no :meth:`schedule` / :meth:`cancel` came after this refresh began.

        ``apply`` should check it under the same lock its owner holds when it re-schedules or
        cancels, so that a refresh racing with a newer token or the session's end is dropped.
        """
        with self._lock:
            return getattr(self._firing, "generation", None) == self._generation

    @property
    def active(self) -> bool:
        return self._timer.pending

    def _cancel_timer(self) -> None:
        self._timer.cancel()

    def _arm(self, delay: float, generation: int, backoff: float) -> None:
        self._timer.schedule(delay, self._fire, generation, backoff)

    def _fire(self, generation: int, backoff: float) -> None:
        with self._lock:
            if generation != self._generation or self._handler is None:
                return
            handler = self._handler
            self._running, self._retrying = True, False
        try:
            self._attempt(handler, generation, backoff)
        finally:
            with self._lock:
                self._running = False
                self._attempts += 1
                self._changed.notify_all()

    def _attempt(self, handler: Callable[[], Optional[str]], generation: int, backoff: float) -> None:
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
                    self._retrying = True


class ExpiryWatch:
    """Two daemon timers past a session token's ``exp``: ``probe`` soon after, ``give_up`` later.

    The server only notices an expired token when a message passes (PROTOCOL.md §1.5), so an
    idle connection would stay open long past ``exp``; probing (a PING) makes the server say
    TOKEN_EXPIRED, and giving up covers a server whose clock disagrees. A server that reads a
    token's claims at a claims path takes its expiry from the claims there, which usually have
    no ``exp``: it never says TOKEN_EXPIRED, so for such a session there is no probe and the
    watch gives up at once (after ``probe_delay``). A refreshed token re-arms the watch;
    :meth:`cancel` stops it.
    """

    def __init__(
        self,
        probe: Callable[[Session], None],
        give_up: Callable[[Session], None],
        *,
        probe_delay: float = 0.25,
        give_up_delay: float = 1.5,
    ) -> None:
        self._probe, self._give_up = probe, give_up
        self.probe_delay, self.give_up_delay = probe_delay, give_up_delay
        self._timers = (OneShot("triplit-expiry-probe"), OneShot("triplit-expiry"))

    def arm(self, session: Session) -> None:
        self.cancel()
        exp = session.expires_at
        if exp is None:
            return
        if expires_at(session.claims) is None:  # the server's claims have no exp: it never checks
            actions = [(self.probe_delay, self._give_up)]
        else:
            actions = [(self.probe_delay, self._probe), (self.give_up_delay, self._give_up)]
        for timer, (delay, action) in zip(self._timers, actions):
            timer.schedule(exp - time.time() + delay, action, session)

    @property
    def pending(self) -> bool:
        return any(timer.pending for timer in self._timers)

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait until both actions have run or were cancelled (for tests)."""
        for timer in self._timers:
            timer.join(timeout)

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()
