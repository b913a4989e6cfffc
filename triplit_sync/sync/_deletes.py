"""Which deletes of an ENTITY_DATA frame may be applied at once, and which must wait for a
verification (PROTOCOL.md §5.3, DESIGN "Own writes missing")."""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Sequence, Set, Tuple

from .._util.types import Changes
from ..store.base import LocalStore
from ._freshness import Freshness, IdSets
from ._live import LiveQuery

__all__ = ["hold_back_deletes"]


def hold_back_deletes(changes: Changes, definitive: IdSets, resumed: Sequence[str], queries: Iterable[LiveQuery],
                      store: LocalStore, fresh: Freshness) -> Tuple[Changes, IdSets]:
    """Split the deletes of a frame into those to apply and those to hold back (``kept``).

    Deletes in ENTITY_DATA are real deletes or evictions, and the wire does not say which:
    an entity that left every live query of the connection (PROTOCOL.md §5.3), or, in the
    first answer of a resumed query, a listed id that is not in *that query's* results (it
    may only have left it, while other queries still hold it). Such a delete is held back
    and the entity checked with the server (a verification, whose answer is definitive:
    ``id in [...]``, not there means gone) when applying it could be wrong:

    - the entity is this client's own write: an eviction would make it vanish from local
      reads while the server still has it;
    - the frame answers a resumed query and another query of this connection holds the
      entity or listed it in its own resume state.

    Returns the changes to apply and the held-back ids."""
    kept: IdSets = {}
    out: Optional[Changes] = None
    elsewhere: Dict[str, Set[str]] = {}
    if resumed:
        for live in queries:
            if live.sent and live.id not in resumed:
                for coll, ids in live.listed.items():
                    elsewhere.setdefault(coll, set()).update(ids)
    for coll, c in changes.items():
        if not c["deletes"]:
            continue
        sure = definitive.get(coll, ())
        other = elsewhere.get(coll, ())
        hold = {eid for eid in c["deletes"]
                if eid not in sure and eid not in c["sets"] and store.get_cached(coll, eid) is not None
                and (_own(store, coll, eid)
                     or (resumed and (eid in other or fresh.is_held(coll, eid))))}
        if hold:
            kept[coll] = hold
            if out is None:
                out = dict(changes)
            out[coll] = {"sets": c["sets"], "deletes": c["deletes"] - hold}
    return (out if out is not None else changes), kept


def _own(store: LocalStore, coll: str, eid: str) -> bool:
    # The store's mark outlives the server's echo and a restart: an own write may be evicted
    # from a connection later (it leaves every live query); only a delete that applies
    # (definitive, or of an entity not ours) ends it.
    return store.written(coll, eid) or store.has_outbox_entry(coll, eid)
