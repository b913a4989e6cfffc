"""Changes, not only snapshots: what was added to, changed in and removed from a live query's
results since the last delivery (beyond the JS client; Firestore's ``on_snapshot`` gives the
same). Mirroring a collection into another store then costs one write per changed row.

Rows are told apart by their ``id`` (a query whose ``select`` leaves ``id`` out cannot be
followed this way and raises :class:`InvalidQueryError`). *Removed* means "left the results":
deleted, or no longer matching the filter, or pushed out by ``limit``.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional

from .._util.callbacks import wait_until
from ..errors import InvalidQueryError, TriplitTimeoutError

__all__ = ["RowChanges", "ChangeTracker", "ChangesStream"]

Row = Dict[str, Any]


class RowChanges(NamedTuple):
    """One delivery of :meth:`TriplitClient.subscribe_changes` / :meth:`~TriplitClient.watch_changes`.

        def mirror(changes):
            for row in changes.added + changes.changed:
                TodoModel.objects.update_or_create(id=row["id"], defaults=row)
            TodoModel.objects.filter(id__in=[r["id"] for r in changes.removed]).delete()

        client.subscribe_changes(client.query("todos"), mirror)

    The first delivery has every row in ``added``.
    """

    #: rows that came into the results, in result order
    added: List[Row]
    #: rows still in the results whose values changed, in result order
    changed: List[Row]
    #: rows that left the results, as they were last delivered
    removed: List[Row]
    #: all the results now (the snapshot ``subscribe`` would have delivered)
    rows: List[Row]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def _key(row: Row) -> Any:
    try:
        return row["id"]
    except KeyError:
        raise InvalidQueryError("subscribe_changes/watch_changes need the id of every row: "
                                "keep 'id' in the query's select") from None


class ChangeTracker:
    """Diffs each snapshot against the previous one (on one thread at a time)."""

    def __init__(self) -> None:
        self._last: Dict[Any, Row] = {}

    def diff(self, rows: List[Row]) -> RowChanges:
        last = self._last
        now: Dict[Any, Row] = {}
        added: List[Row] = []
        changed: List[Row] = []
        for row in rows:
            key = _key(row)
            now[key] = row
            old = last.get(key)
            if old is None:
                added.append(row)
            elif old != row:
                changed.append(row)
        removed = [row for key, row in last.items() if key not in now]
        self._last = now
        return RowChanges(added, changed, removed, rows)


def changes_callback(on_changes: Callable[[RowChanges], Any]) -> Callable[[List[Row]], None]:
    """An ``on_results`` that hands ``on_changes`` the difference to the previous delivery;
    a delivery that changes nothing (the first one always counts) is not passed on."""
    tracker = ChangeTracker()
    first = [True]

    def on_results(rows: List[Row]) -> None:
        changes = tracker.diff(rows)
        if changes or first[0]:
            first[0] = False
            on_changes(changes)
    return on_results


class ChangesStream:
    """The iterator of :meth:`TriplitClient.watch_changes`: each step yields the
    :class:`RowChanges` since the previous step (changes that arrived meanwhile are summed up,
    never lost). Close it, or leave its ``with`` block, to stop."""

    def __init__(self, subscribe: Callable[..., Any], query: Any, timeout: Optional[float],
                 local_only: bool) -> None:
        self._cond = threading.Condition()
        self._latest: Optional[List[Row]] = None
        self._error: Optional[BaseException] = None
        self._closed = False
        self._first = True
        self._tracker = ChangeTracker()
        self.timeout = timeout
        self._subscription = subscribe(query, self._on_results, self._on_error, local_only=local_only)

    def _on_results(self, rows: List[Row]) -> None:
        with self._cond:
            self._latest = rows
            self._cond.notify_all()

    def _on_error(self, error: BaseException) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def __iter__(self) -> Iterator[RowChanges]:
        return self

    def __next__(self) -> RowChanges:
        while True:
            with self._cond:
                if not wait_until(self._cond, lambda: self._error is not None or self._latest is not None
                                  or self._closed, self.timeout):
                    raise TriplitTimeoutError(f"no new results within {self.timeout} s")
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                if self._latest is None:
                    raise StopIteration
                rows, self._latest = self._latest, None
            changes = self._tracker.diff(rows)
            if changes or self._first:
                self._first = False
                return changes

    def close(self) -> None:
        self._subscription.unsubscribe()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __enter__(self) -> "ChangesStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
