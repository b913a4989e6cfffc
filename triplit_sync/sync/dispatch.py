"""The callback thread: user code never runs on the reader thread.

One daemon thread runs submitted callbacks in order. An exception in a callback is logged and
handed to the error hook; the next callback still runs. Callbacks may call anything, including
``flush()`` and ``close()`` of this dispatcher, without deadlock.

    >>> d = Dispatcher()
    >>> d.submit(print, "hello from the dispatcher")
    >>> d.flush(1.0)
    hello from the dispatcher
    True
    >>> d.close()
    True
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional, Set, Tuple

from .._util.redact import redact
from ..errors import ClientClosedError

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)

_Item = Tuple[int, Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]


class Dispatcher:
    """Runs callbacks in submission order on one daemon thread (started on first use).

    ``error_hook(exc)`` receives every exception a callback raises (after it is logged).
    """

    def __init__(
        self, error_hook: Optional[Callable[[BaseException], None]] = None, name: str = "triplit-dispatch"
    ):
        if error_hook is not None and not callable(error_hook):
            raise TypeError("error_hook must be callable or None")
        self._error_hook = error_hook
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._queue: Deque[_Item] = collections.deque()
        self._submitted = 0  # sequence number of the last submitted callback
        self._running: Set[int] = set()  # sequence numbers of callbacks running now (nested flushes)
        self._closing = False
        self._thread: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        return f"<Dispatcher {self._name} pending={len(self._queue)} closed={self._closing}>"

    @property
    def closed(self) -> bool:
        return self._closing

    def in_dispatcher_thread(self) -> bool:
        """True when called from inside a callback (on the dispatcher thread)."""
        return threading.current_thread() is self._thread

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)``. Raises ClientClosedError after close()."""
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {type(fn).__name__}")
        with self._cond:
            if self._closing:
                raise ClientClosedError("the dispatcher is closed")
            self._submitted += 1
            self._queue.append((self._submitted, fn, args, kwargs))
            if self._thread is None or not self._thread.is_alive():
                # Also covers a forked child, where the parent's thread does not exist.
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every callback submitted so far has run; False on timeout.

        From inside a callback the pending callbacks up to the current submission are run right
        here, in order, since waiting for the dispatcher thread would wait for ourselves."""
        with self._cond:
            target = self._submitted
        if self.in_dispatcher_thread():
            while True:
                with self._cond:
                    if not self._queue or self._queue[0][0] > target:
                        return True
                    item = self._queue.popleft()
                    self._running.add(item[0])
                self._run(item)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._flushed_locked(target):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if self._thread is None or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
            return True

    def _flushed_locked(self, target: int) -> bool:
        if self._queue and self._queue[0][0] <= target:
            return False
        return all(seq > target for seq in self._running)

    def close(self, timeout: Optional[float] = 1.0) -> bool:
        """Refuse new callbacks, let the queued ones run, stop the thread. Returns True when
        the queue drained within ``timeout``. Called from a callback it does not wait."""
        with self._cond:
            self._closing = True
            thread = self._thread
            self._cond.notify_all()
        if thread is None or thread is threading.current_thread():
            return not self._queue
        thread.join(timeout)
        return not thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return  # closing and drained
                item = self._queue.popleft()
                self._running.add(item[0])
            self._run(item)

    def _run(self, item: _Item) -> None:
        seq, fn, args, kwargs = item
        try:
            fn(*args, **kwargs)
        except BaseException as e:  # a callback must never take the thread down
            logger.error(
                "callback %s raised %s: %s",
                getattr(fn, "__qualname__", fn),
                type(e).__name__,
                redact(e, 500),
                exc_info=True,
            )
            if self._error_hook is not None:
                try:
                    self._error_hook(e)
                except Exception:
                    logger.exception("dispatcher error hook raised")
        finally:
            with self._cond:
                self._running.discard(seq)
                self._cond.notify_all()
