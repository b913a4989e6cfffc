"""CONNECT_QUERY resume state (PROTOCOL.md §5.5), for the sync engine.

A query's checkpoint is the timestamp of the last ENTITY_DATA received while it was live and
answered; the store keeps the ids of its results then. On the next CONNECT_QUERY the client
lists what it holds and asks for changes since the checkpoint's millisecond: the server skips
listed entities unchanged since then, sends the rest, and deletes what it no longer has.

Why ``[ms, 0, "server"]`` and not the ENTITY_DATA timestamp itself (PROTOCOL.md §13.1): that
timestamp is the server clock's ``current()``, whose counter can be left over from an earlier
millisecond, so a write stamped later in the same millisecond compares below it and would be
skipped for good. Counter 0 is exact for servers on memory or sqlite storage, whose views never
lag a stamped write. ``margin_ms`` asks for more, for what that proof does not cover: servers
on lmdb or sqlite-worker storage (views can lag behind a stamped write by an I/O wait) and
server clocks that step back. Its price is re-receiving everything changed in the last
``margin_ms`` before the checkpoint.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Set

from .._util.types import Timestamp

__all__ = ["ZERO_TIMESTAMP", "resume_state", "since", "vouched_since"]

IdSets = Dict[str, Set[str]]

ZERO_TIMESTAMP: Timestamp = [0, 0, "server"]


def since(checkpoint: Timestamp, margin_ms: int = 0) -> Timestamp:
    """The timestamp to resume ``checkpoint`` from: its millisecond (less ``margin_ms``), counter 0."""
    return [max(int(checkpoint[0]) - margin_ms, 0), 0, "server"]


def resume_state(
    query_id: str,
    checkpoint: Optional[Timestamp],
    known: IdSets,
    local: IdSets,
    cached: IdSets,
    checkpoints: Mapping[str, Timestamp],
    query_ids: Callable[[str], IdSets],
    margin_ms: int = 0,
) -> Optional[Dict[str, Any]]:
    """The ``state`` of a CONNECT_QUERY, or ``None`` when there is nothing to resume.

    ``known``: ids recorded at the query's ``checkpoint``; ``local``: ids its local results are
    made of now; ``cached``: per collection, the ids in the cache; ``checkpoints`` and
    ``query_ids``: every query's checkpoint and recorded ids.
    """
    timestamp = ZERO_TIMESTAMP if checkpoint is None else since(checkpoint, margin_ms)
    # Only ids whose copy is in the cache: the server skips a listed entity it finds unchanged,
    # so listing one the cache lost since (evicted for another query) would keep it missing.
    ids: IdSets = {}
    for coll, known_ids in known.items():
        have = known_ids & cached[coll]
        if have:
            ids[coll] = have
    for coll, local_ids in local.items():
        extra = (local_ids & cached[coll]) - ids.get(coll, set())
        if not extra:
            continue
        # Cached entities this query has not vouched for are only as fresh as the query that
        # brought them; with no such query, nothing about them can be trusted.
        timestamp = min(timestamp, vouched_since(coll, extra, query_id, checkpoints, query_ids, margin_ms))
        ids.setdefault(coll, set()).update(extra)
    ids = {c: s for c, s in ids.items() if s}
    if not ids and checkpoint is None:
        return None
    return {"timestamp": timestamp, "entityIds": {c: sorted(s) for c, s in ids.items()}}


def vouched_since(
    coll: str,
    ids: Set[str],
    exclude: str,
    checkpoints: Mapping[str, Timestamp],
    query_ids: Callable[[str], IdSets],
    margin_ms: int = 0,
) -> Timestamp:
    """Since when cached ``ids`` are known fresh: the oldest checkpoint (less the margin) of the
    other queries that recorded them; 0 if one of them has none."""
    oldest: Optional[Timestamp] = None
    remaining = set(ids)
    for qid, checkpoint in checkpoints.items():
        if qid == exclude or not remaining:
            continue
        held = query_ids(qid).get(coll, set()) & remaining
        if held:
            remaining -= held
            ts = since(checkpoint, margin_ms)
            oldest = ts if oldest is None else min(oldest, ts)
    if remaining or oldest is None:
        return ZERO_TIMESTAMP
    return oldest
