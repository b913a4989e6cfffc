"""What the server keeps fresh on the current connection (a helper of the engine, engine.py).

The server sends changes only for entities in the results of the connection's live queries
(PROTOCOL.md §5.3). The cache also holds entities it never updates: acknowledged writes no
query holds, results of queries no longer live, entities that left a query while the client
was away. If such an entity comes into a live query's local results without the server
having sent it (a related entity or a limit moved it in), it may be stale or long deleted.

:class:`Freshness` counts, per connection, how many answered live queries hold each entity in
their results. An entity that comes into one while nobody held it, that the message being
applied did not carry and that the cache has, is *suspicious*: the engine checks it with a
verification query (:meth:`Freshness.start`), a ``CONNECT_QUERY`` on its id with resume
state at timestamp 0, which makes the server send it or delete it and keeps it fresh for the
rest of the connection. Until the answer comes it is *unverified*: never recorded as vouched
for by a query's checkpoint.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Set, Tuple

from .._util.types import Timestamp
from ..wire.messages import ConnectQuery
from ._wirequery import wire_query

__all__ = ["Freshness", "IdSets"]

IdSets = Dict[str, Set[str]]
_ZERO: Timestamp = [0, 0, "server"]


class Freshness:
    """Held-entity counts and verifications of one connection (not thread-safe: the engine's lock)."""

    def __init__(self, is_cached: Callable[[str, str], bool]) -> None:
        self._is_cached = is_cached
        self.sent = 0  # verification queries sent, ever (their ids are numbered by it)
        #: The changes of the ENTITY_DATA being applied: what it carries is fresh.
        self.received: Optional[Mapping[str, Any]] = None
        self.reset()

    def reset(self) -> None:
        """A new connection: the server holds nothing for it yet."""
        self._held: Dict[str, Dict[str, int]] = {}
        self._verifying: Dict[str, Tuple[str, Set[str]]] = {}
        self.unverified: IdSets = {}

    def track(self, old: IdSets, new: IdSets, listed: Optional[IdSets] = None) -> IdSets:
        """One query's held entities went from ``old`` to ``new``; returns the suspicious ones.

        ``listed``: ids the query's CONNECT_QUERY state named (the server answered for them).
        Costs in proportion to the two sets (a set difference each way).
        """
        received = self.received or {}
        suspicious: IdSets = {}
        for coll in set(old) | set(new):
            before = old.get(coll, set())
            after = new.get(coll, set())
            counts = self._held.setdefault(coll, {})
            for eid in before - after:
                n = counts.get(eid, 0) - 1
                if n > 0:
                    counts[eid] = n
                else:
                    counts.pop(eid, None)
            added = after - before
            if not added:
                continue
            carried = received.get(coll, {}).get("sets", ()) if received else ()
            answered = listed.get(coll, ()) if listed else ()
            for eid in added:
                n = counts.get(eid, 0)
                counts[eid] = n + 1
                if n == 0 and eid not in carried and eid not in answered and self._is_cached(coll, eid):
                    suspicious.setdefault(coll, set()).add(eid)
        return suspicious

    def start(self, coll: str, ids: Set[str]) -> str:
        """Begin checking ``ids`` with the server; they count as held from now on. Returns the
        verification's query id (its message is built by :meth:`message` when it is sent)."""
        self.sent += 1
        vid = f"verify-{self.sent}"
        self._verifying[vid] = (coll, set(ids))
        self.unverified.setdefault(coll, set()).update(ids)
        counts = self._held.setdefault(coll, {})
        for eid in ids:
            counts[eid] = counts.get(eid, 0) + 1
        return vid

    def message(self, vid: str) -> Optional[ConnectQuery]:
        """The CONNECT_QUERY of verification ``vid`` (None once answered or reset): resume state
        at timestamp 0 that lists every id, so the server sends each one or deletes it."""
        verification = self._verifying.get(vid)
        if verification is None:
            return None
        coll, ids = verification
        listed = sorted(ids)
        return ConnectQuery(vid, wire_query({"collectionName": coll, "where": [["id", "in", listed]]}, vid),
                            {"timestamp": _ZERO, "entityIds": {coll: listed}})

    def verifying(self, vid: str) -> Optional[Tuple[str, Set[str]]]:
        """``(collection, ids)`` of a verification not answered yet, else None."""
        return self._verifying.get(vid)

    def is_held(self, coll: str, eid: str) -> bool:
        return bool(self._held.get(coll, {}).get(eid))

    def answered(self, query_id: str) -> Optional[Tuple[str, Set[str]]]:
        """The server answered verification ``query_id``: ``(collection, ids)``, now fresh; else None."""
        verification = self._verifying.pop(query_id, None)
        if verification is not None:
            self.unverified[verification[0]] -= verification[1]
        return verification

    def failed(self, query_id: str) -> Optional[Tuple[str, Set[str]]]:
        """Verification ``query_id`` failed: its ids are neither fresh nor held. None if not one."""
        verification = self.answered(query_id)
        if verification is not None:
            coll, ids = verification
            self.track({coll: ids}, {})
        return verification

    def without_unverified(self, ids: IdSets) -> IdSets:
        """``ids`` minus those a verification has not answered yet."""
        if not self.unverified:
            return ids
        unverified = self.unverified
        return {c: s - unverified[c] if c in unverified else s for c, s in ids.items()}
