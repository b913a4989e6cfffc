"""Changes, not only snapshots: what was added to, changed in and removed from a live query's
results since the last delivery (beyond the JS client; Firestore's ``on_snapshot`` gives the
same). Mirroring a collection into another store then costs one write per changed row.

Rows are told apart by their ``id`` (a query whose ``select`` leaves ``id`` out cannot be
followed this way and raises :class:`InvalidQueryError`). *Removed* means "left the results":
deleted, or no longer matching the filter, or pushed out by ``limit``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional

from ..errors import InvalidQueryError
from ._streams import RowsStream

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
        # The latest rows, as watch() gives them; what changed is told against the last step's.
        self._rows = RowsStream(subscribe, query, timeout, local_only)
        self._first = True
        self._tracker = ChangeTracker()

    @property
    def timeout(self) -> Optional[float]:
        return self._rows.timeout

    def __iter__(self) -> Iterator[RowChanges]:
        return self

    def __next__(self) -> RowChanges:
        while True:
            changes = self._tracker.diff(next(self._rows))
            if changes or self._first:
                self._first = False
                return changes

    def close(self) -> None:
        self._rows.close()

    def __enter__(self) -> "ChangesStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
