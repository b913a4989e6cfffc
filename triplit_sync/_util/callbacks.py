"""Two small mechanisms every layer with user-facing waits and callbacks shares."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, List, Optional

__all__ = ["add_callback", "wait_until"]

#: Blocking waits wake up this often, so that Ctrl-C interrupts them on every platform.
_SLICE = 0.25


def wait_until(cond: threading.Condition, done: Callable[[], bool], timeout: Optional[float]) -> bool:
    """With ``cond`` held: wait until ``done()`` (True) or until ``timeout`` seconds pass (False).

    ``done`` may raise to end the wait with an error; ``timeout=None`` waits for ever.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while not done():
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        cond.wait(_SLICE if remaining is None else min(remaining, _SLICE))
    return True


def add_callback(lock: Any, callbacks: List[Any], callback: Any) -> Callable[[], None]:
    """Register ``callback`` in ``callbacks`` (under ``lock``); returns a function that removes it."""
    if not callable(callback):
        raise TypeError(f"callback must be callable, not {type(callback).__name__}")
    with lock:
        callbacks.append(callback)

    def remove() -> None:
        with lock:
            if callback in callbacks:
                callbacks.remove(callback)

    return remove
