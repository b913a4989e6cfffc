"""Deadlines on one connection: READY must come, a ping must be answered.

A TCP connection can stay open while nothing passes (a stalled proxy, a peer that froze, a
cable pulled without a reset); reads then just wait. So after READY the transport pings every
``ping_interval`` seconds (the app-level PING, which the server answers with PONG at once,
PROTOCOL.md §1.6) and any frame that arrives after a ping answers it. A ping unanswered after
``pong_timeout`` seconds means the connection is dead: ``on_dead`` is called and the transport
drops it and reconnects. ``probe()`` sends such a ping now (used when a write batch waits too
long for its ack). Time the reader spends applying a frame does not count against a deadline:
the answer may be waiting behind that frame.

Bound: a connection that goes silent is declared dead at most ``ping_interval + pong_timeout``
(<= 2 x ``ping_interval``) after the last frame arrived, plus the time spent applying a frame.

    watch = Keepalive(ping_interval=45, pong_timeout=10, ready_timeout=10,
                      send_ping=lambda: transport.send(Ping(...)), on_dead=drop)
    watch.start(); watch.arrived(); watch.done(); watch.ready(); watch.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

__all__ = ["Keepalive"]

logger = logging.getLogger(__name__)


class Keepalive:
    """The deadline watch of one connection (see the module docstring); one daemon thread."""

    def __init__(
        self,
        *,
        ping_interval: Optional[float],
        pong_timeout: float,
        ready_timeout: float,
        send_ping: Callable[[], bool],
        on_dead: Callable[[str], None],
        name: str = "triplit-keepalive",
    ) -> None:
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.ready_timeout = ready_timeout
        self._send_ping = send_ping
        self._on_dead = on_dead
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        now = time.monotonic()
        self._arrived = now  # the last frame's arrival
        self._done = now  # the end of the last frame's handling (or the start)
        self._busy = False
        self._ready = False
        self._stopped = False
        self._ping_due: Optional[float] = None
        self._waiting: Optional[float] = None  # when the unanswered ping went out
        self._timeout = pong_timeout  # the deadline of that ping
        self._want_probe: Optional[float] = None

    def start(self) -> None:
        threading.Thread(target=self._run, name=self._name, daemon=True).start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def arrived(self) -> None:
        """A frame arrived (the reader calls this before handling it)."""
        with self._cond:
            self._arrived = time.monotonic()
            self._busy = True

    def done(self) -> None:
        """The reader finished handling a frame."""
        with self._cond:
            self._done = time.monotonic()
            self._busy = False
            self._cond.notify_all()

    def ready(self) -> None:
        """READY arrived: pings start."""
        with self._cond:
            self._ready = True
            if self.ping_interval:
                self._ping_due = time.monotonic() + self.ping_interval
            self._cond.notify_all()

    def probe(self, timeout: Optional[float] = None) -> bool:
        """Ping now and expect an answer within ``timeout`` (default ``pong_timeout``). False
        before READY or after stop (nothing to probe)."""
        with self._cond:
            if not self._ready or self._stopped:
                return False
            self._want_probe = self.pong_timeout if timeout is None else timeout
            self._cond.notify_all()
            return True

    # ---------------------------------------------------------------- the thread

    def _run(self) -> None:
        while True:
            send = False
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                dead = self._check(now)
                if dead is None:
                    if self._want_probe is not None or (
                        self._ping_due is not None and now >= self._ping_due and self._waiting is None
                    ):
                        send = True
                        timeout = self._want_probe if self._want_probe is not None else self.pong_timeout
                        self._want_probe = None
                        if self._waiting is None:
                            self._waiting, self._timeout = now, timeout
                        else:  # a probe while a ping is unanswered: the earlier deadline holds
                            self._timeout = min(self._timeout, timeout)
                        if self.ping_interval:
                            self._ping_due = now + self.ping_interval
                    else:
                        self._cond.wait(self._next_wake(now))
                        continue
            if dead is not None:
                logger.warning("the connection is silent: %s; dropping it", dead)
                self._on_dead(dead)
                return
            if send and not self._send_ping():
                return  # the write failed: the transport has dropped the connection already

    def _check(self, now: float) -> Optional[str]:
        """The reason the connection is dead, or None (called under the lock)."""
        if self._busy:
            return None
        if not self._ready:
            if now - max(self._arrived, self._done) >= self.ready_timeout:
                return f"no READY within {self.ready_timeout:g} s of the last frame"
            return None
        if self._waiting is not None:
            if self._arrived >= self._waiting:
                self._waiting = None  # answered
                self._timeout = self.pong_timeout
            elif now - max(self._waiting, self._done) >= self._timeout:
                return f"no answer to a ping within {self._timeout:g} s"
        return None

    def _next_wake(self, now: float) -> Optional[float]:
        if self._busy:
            return None  # done() wakes us
        if not self._ready:
            return max(0.0, max(self._arrived, self._done) + self.ready_timeout - now)
        wakes = []
        if self._waiting is not None:
            wakes.append(max(self._waiting, self._done) + self._timeout - now)
        if self._ping_due is not None and self._waiting is None:
            wakes.append(self._ping_due - now)
        return max(0.0, min(wakes)) if wakes else None


def check_pong_timeout(ping_interval: Optional[float], pong_timeout: Optional[float]) -> float:
    """The pong timeout to use: ``pong_timeout``, or by default 10 s (at most ``ping_interval``).
    Raises ValueError for one that is not positive or is longer than ``ping_interval`` (the
    bound of 2 x ``ping_interval`` would not hold)."""
    if pong_timeout is None:
        return min(10.0, ping_interval) if ping_interval else 10.0
    if isinstance(pong_timeout, bool) or not isinstance(pong_timeout, (int, float)) or not pong_timeout > 0:
        raise ValueError(f"pong_timeout must be a positive number of seconds, got {pong_timeout!r}")
    if ping_interval and pong_timeout > ping_interval:
        raise ValueError(
            f"pong_timeout ({pong_timeout!r}) must not be longer than ping_interval ({ping_interval!r})"
        )
    return float(pong_timeout)
