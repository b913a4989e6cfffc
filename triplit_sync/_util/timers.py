"""The one timer facility: every delayed call of the client (token refresh, expiry probes, write
acknowledgement watch, checkpoint saves, slot draining, the close-handshake watchdog) is a
:class:`OneShot`, a daemon ``threading.Timer`` that is never left behind twice.

(The keepalive pings and the reconnect backoff wait inside threads that exist anyway, the
transport's, and need no timer.)
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

__all__ = ["OneShot"]


class OneShot:
    """At most one pending call at a time, on a daemon thread named ``name``.

    :meth:`schedule` replaces a pending call, :meth:`cancel` drops it; a call that is running
    is no longer pending, so it may schedule the next one itself.

        >>> timer = OneShot("example")
        >>> timer.schedule(60, print, "never printed"); timer.pending
        True
        >>> timer.cancel(); timer.pending
        False
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._timer: Optional[threading.Timer] = None
        self._last: Optional[threading.Timer] = None  # the latest started, pending or not

    def schedule(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        def run() -> None:
            with self._lock:
                if self._timer is not timer:
                    return  # replaced or cancelled while it was about to run
                self._timer = None
            fn(*args)

        timer = threading.Timer(max(delay, 0.0), run)
        timer.daemon = True
        timer.name = self.name
        with self._lock:
            old, self._timer, self._last = self._timer, timer, timer
        if old is not None:
            old.cancel()
        timer.start()

    def cancel(self) -> None:
        with self._lock:
            old, self._timer = self._timer, None
        if old is not None:
            old.cancel()

    @property
    def pending(self) -> bool:
        with self._lock:
            return self._timer is not None

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait until the latest scheduled call has run or was cancelled (for tests)."""
        with self._lock:
            last = self._last
        if last is not None:
            last.join(timeout)
