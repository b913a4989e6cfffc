"""A live query with its sync state: the rows, whether the server has answered (loading,
fulfilled, error) and which of the rows still have writes waiting for the server (JS
``subscribeWithStatus``, ``onQuerySyncStateChange`` and the ``syncStatus`` option in one).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, FrozenSet, List, Literal, NamedTuple, Optional, Set, Tuple

from ..errors import QueryError

__all__ = ["QueryState", "QueryStatus", "StatusSubscription"]

Row = Dict[str, Any]
#: ``"loading"`` until the server has answered the query (also while offline), ``"fulfilled"``
#: after, ``"error"`` when the server refused the query.
QueryStatus = Literal["loading", "fulfilled", "error"]


class QueryState(NamedTuple):
    """What :meth:`TriplitClient.subscribe_with_status` delivers on every change.

        def show(state):
            if state.status == "error":
                print("query failed:", state.error)
            elif state.rows is not None:
                print(len(state.rows), "rows,", len(state.pending), "not on the server yet",
                      "(loading)" if state.status == "loading" else "")

        client.subscribe_with_status(client.query("todos"), show)
    """

    #: the results (``None`` before the first local results)
    rows: Optional[List[Row]]
    status: QueryStatus
    #: the server's :class:`QueryError` (status ``"error"``), or the last problem reported
    error: Optional[BaseException]
    #: ids of the rows with writes that wait for the server (JS ``syncStatus: "pending"``)
    pending: FrozenSet[str]


class StatusSubscription:
    """The handle of :meth:`TriplitClient.subscribe_with_status`: :attr:`state` now, and
    ``unsubscribe()`` (or leaving its ``with`` block) to stop."""

    def __init__(self, collection: str, on_state: Callable[[QueryState], Any],
                 is_pending: Callable[[str, str], bool], local_only: bool) -> None:
        self._collection = collection
        self._on_state = on_state
        self._is_pending = is_pending
        self._local_only = local_only
        self._lock = threading.Lock()
        self._state = QueryState(None, "loading", None, frozenset())
        self._ids: Set[str] = set()
        self._stops: List[Callable[[], None]] = []
        self.active = True

    @property
    def state(self) -> QueryState:
        with self._lock:
            return self._state

    def _pending_of(self, rows: List[Row]) -> FrozenSet[str]:
        return frozenset(str(r["id"]) for r in rows if "id" in r and self._is_pending(self._collection, str(r["id"])))

    def _emit(self, **changes: Any) -> None:
        """On the callback thread: a new state; passed on when it differs."""
        if not self.active:
            return
        with self._lock:
            new = self._state._replace(**changes)
            if new == self._state:
                return
            self._state = new
        self._on_state(new)

    # the subscription's callbacks (callback thread)

    def on_results(self, rows: List[Row]) -> None:
        self._ids = {str(r["id"]) for r in rows if "id" in r}
        extra: Dict[str, Any] = {}
        if self._local_only and self._state.status == "loading":
            extra["status"] = "fulfilled"  # nothing more is coming
        self._emit(rows=rows, pending=self._pending_of(rows), **extra)

    def on_error(self, error: BaseException) -> None:
        if isinstance(error, QueryError):
            self._emit(status="error", error=error)
        else:
            self._emit(error=error)

    def on_remote_fulfilled(self) -> None:
        if self._state.status != "error":
            self._emit(status="fulfilled")

    def on_sync_state(self, keys: Set[Tuple[str, str]]) -> None:
        """Some entities' writes moved (sent, acknowledged, rejected): recompute ``pending``."""
        rows = self._state.rows
        if rows is None or not any(c == self._collection and i in self._ids for c, i in keys):
            return
        self._emit(pending=self._pending_of(rows))

    def stop_with(self, stop: Callable[[], None]) -> None:
        """Call ``stop()`` when this subscription ends (what it is built from)."""
        self._stops.append(stop)

    def unsubscribe(self) -> None:
        self.active = False
        stops, self._stops = self._stops, []
        for stop in stops:
            stop()

    def __enter__(self) -> "StatusSubscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unsubscribe()
