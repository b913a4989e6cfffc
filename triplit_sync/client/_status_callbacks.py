"""``on_connection_status_change``: telling the application each time the client's connection
status changes (the socket drops, reconnects, a session starts or ends).

The status users see is the facade's (``TriplitClient.connection_status``): UNINITIALIZED
without a session, else the socket's CONNECTING / OPEN / CLOSING / CLOSED. It changes when the
transport's status changes and when a session begins or ends, so :class:`StatusCallbacks`
listens to both: the current transport (a fork replaces it) and the session manager. Each
change is computed where it happens, from that change's own status (so none is skipped or
reordered), and handed to the callback thread; consecutive equal statuses are reported once.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Callable, List, Optional

from ..errors import ClientClosedError
from ..transport import ConnectionStatus, StatusChange

__all__ = ["StatusCallback", "StatusCallbacks", "public_status"]

logger = logging.getLogger(__name__)

StatusCallback = Callable[[ConnectionStatus], Any]

_live: "weakref.WeakSet[StatusCallbacks]" = weakref.WeakSet()


def public_status(has_session: bool, transport_status: ConnectionStatus) -> ConnectionStatus:
    """The client's status for a transport status: UNINITIALIZED without a session; a transport
    that never connected counts as CLOSED while a session exists."""
    if not has_session:
        return ConnectionStatus.UNINITIALIZED
    if transport_status is ConnectionStatus.UNINITIALIZED:
        return ConnectionStatus.CLOSED
    return transport_status


class StatusCallbacks:
    """The registered status callbacks of one client and the last status they heard.

    ``has_session()`` says whether the client has a session now; ``transport_status()`` reads
    the current transport's status; ``submit(callback, *args)`` runs a callback on the client's
    callback thread.
    """

    def __init__(
        self,
        *,
        has_session: Callable[[], bool],
        transport_status: Callable[[], ConnectionStatus],
        submit: Callable[..., None],
    ) -> None:
        self._has_session = has_session
        self._transport_status = transport_status
        self._submit = submit
        self._lock = threading.Lock()
        self._callbacks: List[StatusCallback] = []
        self._last: Optional[ConnectionStatus] = None
        self._transport: Any = None
        _live.add(self)

    def add(self, callback: StatusCallback, run_immediately: bool = False) -> Callable[[], None]:
        """Register ``callback``; with ``run_immediately`` it also hears the current status first."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._lock:
            self._callbacks.append(callback)
            if run_immediately:
                # Under the lock: no change can be reported between this and the current status.
                current = self._current()
                self._last = current
                self._submit_safely(callback, current)

        def remove() -> None:
            with self._lock:  # the lock of now: a fork replaces it
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    def attach(self, transport: Any) -> None:
        """Follow ``transport`` (a new one replaces the previous, e.g. after a fork).

        The previous one's listener is not removed but ignored: in a forked child, removing it
        would take that transport's lock, which a thread of the parent may have held at the fork."""
        self._transport = transport
        transport.add_status_listener(lambda change: self._transport_changed(transport, change))

    def session_changed(self) -> None:
        """A session began or ended: the status may have moved without the socket's changing."""
        self._report(lambda: self._current())

    # ------------------------------------------------------------------ internals

    def _current(self) -> ConnectionStatus:
        return public_status(self._has_session(), self._transport_status())

    def _transport_changed(self, transport: Any, change: StatusChange) -> None:
        if transport is self._transport:
            self._report(lambda: public_status(self._has_session(), change.status))

    def _report(self, status_of: Callable[[], ConnectionStatus]) -> None:
        with self._lock:
            status = status_of()
            if status is self._last:
                return
            self._last = status
            for callback in list(self._callbacks):
                self._submit_safely(callback, status)

    def _submit_safely(self, callback: StatusCallback, status: ConnectionStatus) -> None:
        try:
            self._submit(callback, status)
        except ClientClosedError:
            logger.debug("status %s not reported: the client is closed", status.value)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a parent thread may have held it at the fork


def _after_fork() -> None:
    for callbacks in list(_live):
        callbacks._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
