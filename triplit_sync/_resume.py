"""CONNECT_QUERY resume state (PROTOCOL.md §5.5), for the sync engine.

A query's checkpoint is the timestamp of the last ENTITY_DATA received while it was live and
answered; the store keeps the ids of its results then. On the next CONNECT_QUERY the client
lists what it holds and asks for changes since a little before the checkpoint: the server skips
listed entities unchanged since then, sends the rest, and deletes what it no longer has.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Set

from ._types import Timestamp

__all__ = ["RESUME_MARGIN_MS", "ZERO_TIMESTAMP", "resume_state", "vouched_since"]

IdSets = Dict[str, Set[str]]

ZERO_TIMESTAMP: Timestamp = [0, 0, "server"]
#: Resume asks for changes since a little before the checkpoint: the server stamps a write
#: when it commits but sends it when its views have caught up, so an ENTITY_DATA timestamp
#: can be later than a write it does not contain yet. Re-sending a few entities is cheap;
#: skipping one would leave it stale for good.
RESUME_MARGIN_MS = 2000


def _since(checkpoint: Timestamp) -> Timestamp:
    return [max(int(checkpoint[0]) - RESUME_MARGIN_MS, 0), 0, "server"]


def resume_state(
    query_id: str,
    checkpoint: Optional[Timestamp],
    known: IdSets,
    local: IdSets,
    cached: IdSets,
    checkpoints: Mapping[str, Timestamp],
    query_ids: Callable[[str], IdSets],
) -> Optional[Dict[str, Any]]:
    """The ``state`` of a CONNECT_QUERY, or ``None`` when there is nothing to resume.

    ``known``: ids recorded at the query's ``checkpoint``; ``local``: ids its local results are
    made of now; ``cached``: per collection, the ids in the cache; ``checkpoints`` and
    ``query_ids``: every query's checkpoint and recorded ids.
    """
    timestamp = ZERO_TIMESTAMP if checkpoint is None else _since(checkpoint)
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
        timestamp = min(timestamp, vouched_since(coll, extra, query_id, checkpoints, query_ids))
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
            ts = _since(checkpoint)
            oldest = ts if oldest is None else min(oldest, ts)
    if remaining or oldest is None:
        return ZERO_TIMESTAMP
    return oldest
