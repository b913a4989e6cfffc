"""The transport's status and who hears of its changes.

A change is recorded under the transport's lock (so it is ordered with what caused it) and
delivered afterwards, outside the lock, by whichever thread finds changes pending: listeners
see every change once, in order, and never run under the transport's lock.
"""

from __future__ import annotations

import threading
from typing import Callable, List, Optional

from .._util.callbacks import add_callback
from ._status import CloseInfo, ConnectionStatus, StatusChange

__all__ = ["StatusBoard"]


class StatusBoard:
    """``lock`` is the transport's condition (notified on every change); ``call_safely(fn,
    change, what=...)`` runs a listener and reports what it raises."""

    def __init__(self, lock: threading.Condition, call_safely: Callable[..., None]) -> None:
        self._lock = lock
        self._call_safely = call_safely
        self.status = ConnectionStatus.UNINITIALIZED
        self._listeners: List[Callable[[StatusChange], None]] = []
        self._pending: List[StatusChange] = []
        self._notifying = False

    def add_listener(self, callback: Callable[[StatusChange], None]) -> Callable[[], None]:
        return add_callback(self._lock, self._listeners, callback)

    def set_locked(self, status: ConnectionStatus, manual: bool = False, close: Optional[CloseInfo] = None) -> None:
        """Record a change (the caller holds the lock); :meth:`notify` delivers it."""
        if status is self.status:
            return
        self._pending.append(StatusChange(status, self.status, manual, close))
        self.status = status
        self._lock.notify_all()

    def notify(self) -> None:
        """Deliver pending changes (without the lock held). A thread that finds another one
        delivering leaves its changes to it: no waiting, no reordering."""
        with self._lock:
            if self._notifying:
                return
            self._notifying = True
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        self._notifying = False  # under the same lock as the check: none is lost
                        return
                    change = self._pending.pop(0)
                    listeners = list(self._listeners)
                for cb in listeners:
                    self._call_safely(cb, change, what="status listener")
        except BaseException:
            with self._lock:
                self._notifying = False
            raise

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<StatusBoard {self.status.value}>"
