"""The outbox (PROTOCOL.md §6): pending writes per owner, the one in-flight batch, merging rules.

A *segment* is a run of pending writes by one owner (an identity key chosen by the session
layer). Writes by the same owner merge into the last segment; a write by a different owner starts
a new segment, so reads keep the real order of writes across owners. Promoting an owner's
segments makes the in-flight batch, which sits below every pending segment.

Every entity entry also belongs to a *unit*: the writes of one call (one transaction), merged
with every other unit that touched one of its entities. Units never share an entity, so a batch
the server rejects can be split between units (oldest first) without tearing a transaction
apart or reordering two writes to one entity.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Set, Tuple

from .._util.types import Changes, Document, Timestamp
from ._changes import (
    check_changes,
    check_doc,
    check_ids,
    check_owner,
    check_timestamp,
    copy_changes,
    copy_doc,
)
from ._writes import Writes

logger = logging.getLogger(__name__)

__all__ = ["OutboxEntry", "OutboxRow", "Segment", "OutboxMixin", "merge_entry", "overlay"]

from ._segments import Entry, Key, OutboxEntry, OutboxRow, Segment, merge_entry, overlay

_Staged = List[Tuple[str, Dict[str, Document], Set[str]]]


class OutboxMixin:
    """The outbox half of :class:`~triplit_sync.store.base.LocalStore` (state and helpers live there)."""

    if TYPE_CHECKING:  # provided by LocalStore
        _lock: threading.RLock
        _cache: Dict[str, Dict[str, Document]]
        _inflight: Optional[Segment]
        _pending: List[Segment]
        _next_unit: int

        def _check_open(self) -> None: ...
        def _layers(self) -> List[Segment]: ...
        def _persist(self, writes: Writes) -> None: ...
        def _stage_server(self, changes: Changes, what: str) -> Tuple[_Staged, Set[str]]: ...
        def _commit_entities(self, staged: _Staged, timestamp: Timestamp,
                             written: Optional[Changes] = None) -> None: ...
        def _entity_writes(self, writes: Writes, staged: _Staged, timestamp: Timestamp,
                           written: Optional[Changes] = None) -> None: ...

        @staticmethod
        def _overlay(collection: str, entity_id: str, doc: Optional[Document],
                     layers: Iterable[Segment]) -> Optional[Document]: ...

    def add_local_changes(self, changes: Changes, owner: str) -> Set[str]:
        """Queue local writes of ``owner`` (one unit: see the module docstring); durable before it
        returns. Returns the collections written.

        Merged per entity into the owner's latest pending writes (PROTOCOL.md §6.1): later sets
        deep-merge into earlier ones; a delete replaces a pending update; a delete of a pending
        insert cancels both unless the entity also exists below it (cache or earlier writes), in
        which case the delete is kept; a set after a delete keeps both.

        >>> new = {"todos": {"sets": {"t2": {"id": "t2", "done": False}}, "deletes": set()}}
        >>> store.add_local_changes(new, owner="alice")  # doctest: +SKIP
        {'todos'}
        """
        check_owner(owner)
        check_changes(changes, "add_local_changes")
        # validate and copy outside the lock: user documents may be large
        incoming: List[Tuple[str, Set[str], Dict[str, Document]]] = []
        for coll, cc in changes.items():
            deletes = check_ids(coll, cc.get("deletes") or (), "add_local_changes")
            sets: Dict[str, Document] = {}
            for eid, doc in (cc.get("sets") or {}).items():
                check_doc(coll, eid, doc, "add_local_changes")
                sets[eid] = copy_doc(coll, eid, doc, "add_local_changes")
            if deletes or sets:
                incoming.append((coll, deletes, sets))
        with self._lock:
            self._check_open()
            if not incoming:
                return set()
            if self._pending and self._pending[-1].owner == owner:
                seg = self._pending[-1]
                below = self._layers()[:-1]
                new_segment = False
            else:
                seg = Segment(self._next_sid(), owner)
                below = self._layers()
                new_segment = True
            staged: Dict[Key, Entry] = {}
            for coll, deletes, sets in incoming:
                cache = self._cache.get(coll) or {}
                for eid in deletes | sets.keys():
                    staged[(coll, eid)] = merge_entry(
                        seg.entry(coll, eid),
                        eid in deletes,
                        sets.get(eid),
                        lambda: self._overlay(coll, eid, cache.get(eid), below) is not None,  # noqa: B023
                    )
            unit, moved = seg.joined_unit(staged, self._next_unit)
            moved -= staged.keys()
            writes = Writes()
            writes.outbox_rows = [
                (seg.sid, owner, False, coll, eid, pending_set, pending_delete, unit)
                for (coll, eid), (pending_set, pending_delete) in staged.items()
            ]
            for coll, eid in moved:
                pending_set, pending_delete = seg.entry(coll, eid)
                writes.outbox_rows.append((seg.sid, owner, False, coll, eid, pending_set, pending_delete, unit))
            self._persist(writes)
            self._next_unit += 1
            seg.relabel(moved, unit)
            for (coll, eid), entry in staged.items():
                seg.put(coll, eid, entry, unit)
            if new_segment and seg.changes:
                self._pending.append(seg)
            elif not new_segment and not seg.changes:
                self._pending.pop()
            return {coll for coll, _, _ in incoming}

    def _next_sid(self) -> int:
        sids = [seg.sid for seg in self._layers()]
        return max(sids) + 1 if sids else 1

    def next_batch(self, owner: str) -> Optional[Changes]:
        """The batch to send now for ``owner``, or ``None``.

        If a batch is in flight it is returned again (to re-send after a reconnect), but only to
        its own owner: ``None`` for anyone else (see :meth:`requeue_inflight`). Otherwise all of
        ``owner``'s pending writes are merged into a new in-flight batch, durably. Other owners'
        pending writes stay pending and overlay it in reads, as the server will apply them later.
        """
        check_owner(owner)
        with self._lock:
            self._check_open()
            if self._inflight is not None:
                return copy_changes(self._inflight.changes) if self._inflight.owner == owner else None
            mine = [seg for seg in self._pending if seg.owner == owner]
            if not mine:
                return None
            sids = [seg.sid for seg in self._pending]
            batch = Segment(min(sids) - 1, owner)
            merged_into: Dict[int, int] = {}  # units of the segments merged away, and where to
            for seg in mine:
                for coll, eid, pending_set, pending_delete in list(seg.rows()):
                    cache = self._cache.get(coll) or {}
                    key = (coll, eid)
                    unit = seg.units.get(key, 0)
                    while unit in merged_into:
                        unit = merged_into[unit]
                    existing = batch.units.get(key)
                    if existing is not None and existing != unit:
                        # Two segments' units share this entity: from now on they are one.
                        unit, other = min(existing, unit), max(existing, unit)
                        batch.relabel(set(batch.members.get(other, ())), unit)
                        merged_into[other] = unit
                    batch.put(coll, eid, merge_entry(
                        batch.entry(coll, eid), pending_delete, pending_set,
                        lambda: eid in cache,  # noqa: B023
                    ), unit)
            writes = Writes()
            writes.segment_deletes = [seg.sid for seg in mine]
            writes.outbox_rows = batch.row_tuples(True)
            self._persist(writes)
            self._pending = [seg for seg in self._pending if seg.owner != owner]
            if not batch.changes:
                return None
            self._inflight = batch
            return copy_changes(batch.changes)

    def inflight(self) -> Optional[Tuple[str, Changes]]:
        """``(owner, changes)`` of the batch on the wire, or ``None``."""
        with self._lock:
            self._check_open()
            if self._inflight is None:
                return None
            return self._inflight.owner, copy_changes(self._inflight.changes)

    def inflight_owner(self) -> Optional[str]:
        """The owner of the batch on the wire, or ``None`` (cheap: nothing is copied)."""
        with self._lock:
            self._check_open()
            return self._inflight.owner if self._inflight is not None else None

    def inflight_units(self) -> int:
        """How many units the in-flight batch holds (0 without one)."""
        with self._lock:
            self._check_open()
            return len(self._inflight.members) if self._inflight is not None else 0

    def ack_inflight(self, timestamp: Timestamp) -> Set[str]:
        """The server committed the in-flight batch under ``timestamp`` (CHANGES_ACK).

        Applies it to the cache as server data and clears it, in one transaction. Returns the
        collections whose cache changed (reads already showed the batch, so views rarely change).
        Without a batch in flight: nothing happens and an empty set is returned.
        """
        ts = check_timestamp(timestamp)
        with self._lock:
            self._check_open()
            seg = self._inflight
            if seg is None:
                logger.warning("ack_inflight: no batch in flight; ignoring the ack")
                return set()
            staged, changed = self._stage_server(seg.changes, "ack_inflight")
            writes = Writes()
            self._entity_writes(writes, staged, ts, written=seg.changes)
            writes.segment_deletes = [seg.sid]
            self._persist(writes)
            self._commit_entities(staged, ts, written=seg.changes)
            self._inflight = None
            return changed

    def finish_inflight(self) -> Set[str]:
        """The in-flight batch is known to be applied on the server, whose current documents
        the cache already holds: drop it without merging it into the cache (that could bring
        back values changed since). Returns the collections it touched."""
        with self._lock:
            self._check_open()
            seg = self._inflight
            if seg is None:
                return set()
            writes = Writes()
            self._entity_writes(writes, [], [0, 0, "server"], written=seg.changes)
            writes.segment_deletes = [seg.sid]
            self._persist(writes)
            self._commit_entities([], [0, 0, "server"], written=seg.changes)
            self._inflight = None
            return set(seg.changes)

    def reject_inflight(self) -> Optional[Changes]:
        """Drop the in-flight batch (its optimistic effect leaves reads) and return it, or ``None``."""
        with self._lock:
            self._check_open()
            seg = self._inflight
            if seg is None:
                return None
            writes = Writes()
            writes.segment_deletes = [seg.sid]
            self._persist(writes)
            self._inflight = None
            return seg.changes

    def split_inflight(self) -> bool:
        """Keep the older half of the in-flight batch's units in flight and turn the rest back
        into its owner's oldest pending writes. False (nothing changes) with fewer than two units.
        """
        with self._lock:
            self._check_open()
            seg = self._inflight
            if seg is None or len(seg.members) < 2:
                return False
            units = sorted(seg.members)
            keep = set(units[: len(units) // 2])
            kept, rest = Segment(seg.sid - 1, seg.owner), Segment(seg.sid, seg.owner)
            for coll, eid, doc, deleted in seg.rows():
                unit = seg.units[(coll, eid)]
                (kept if unit in keep else rest).put(coll, eid, (doc, deleted), unit)
            writes = Writes()
            writes.segment_deletes = [seg.sid]
            writes.outbox_rows = kept.row_tuples(True) + rest.row_tuples(False)
            self._persist(writes)
            self._inflight = kept
            self._pending.insert(0, rest)  # its sid is still below every pending one
            return True

    def drop_inflight_deletes(self, collection: str, ids: Iterable[str]) -> bool:
        """Remove the deletes of ``ids`` from the in-flight batch (their entities are already
        gone on the server); a re-insert after the delete stays. Returns whether the batch
        still holds anything."""
        with self._lock:
            self._check_open()
            seg = self._inflight
            if seg is None:
                return False
            writes = Writes()
            updates: List[Tuple[str, Entry, int]] = []
            for eid in ids:
                pending_set, pending_delete = seg.entry(collection, eid)
                if not pending_delete:
                    continue
                unit = seg.units.get((collection, eid), 0)
                updates.append((eid, (pending_set, False), unit))
                writes.outbox_rows.append((seg.sid, seg.owner, True, collection, eid, pending_set, False, unit))
            if updates:
                self._persist(writes)
                for eid, entry, unit in updates:
                    seg.put(collection, eid, entry, unit)
            if not seg.changes:
                writes = Writes()
                writes.segment_deletes = [seg.sid]
                self._persist(writes)
                self._inflight = None
                return False
            return True

    def requeue_inflight(self) -> bool:
        """Turn the in-flight batch back into its owner's oldest pending writes (nothing is lost).

        For a batch that must not be re-sent as is: rejected writes kept for a retry (the JS
        policy), or a batch whose owner is not the current identity. Returns whether there was one.
        """
        with self._lock:
            self._check_open()
            seg = self._inflight
            if seg is None:
                return False
            writes = Writes()
            writes.segment_flags = [(seg.sid, False)]
            self._persist(writes)
            self._inflight = None
            self._pending.insert(0, seg)  # its sid is below every pending one
            return True

    def adopt_pending(self, from_owner: str, to_owner: str) -> bool:
        """Give ``from_owner``'s pending writes to ``to_owner`` (writes made before any session
        belong to the first session that starts). Returns whether there were any."""
        check_owner(to_owner)
        with self._lock:
            self._check_open()
            segments = [seg for seg in self._pending if seg.owner == from_owner]
            if not segments or from_owner == to_owner:
                return False
            writes = Writes()
            for seg in segments:
                writes.outbox_rows.extend(
                    (sid, to_owner, inflight, coll, eid, doc, delete, unit)
                    for sid, _, inflight, coll, eid, doc, delete, unit in seg.row_tuples(False))
            self._persist(writes)
            for seg in segments:
                seg.owner = to_owner
            return True

    def import_outbox(self, segments: Iterable[Segment]) -> int:
        """Append another outbox's writes (oldest first; an in-flight batch among them comes back
        as pending) after this one's, durably, keeping each segment's owner and units. For the
        writes a dead process left in its own database. Returns how many entity writes came in."""
        with self._lock:
            self._check_open()
            sid = self._next_sid()
            base, top = self._next_unit, 0
            new: List[Segment] = []
            writes = Writes()
            for seg in segments:
                check_owner(seg.owner)
                copy = Segment(sid, seg.owner)
                for coll, eid, doc, deleted in seg.rows():
                    unit = seg.units.get((coll, eid), 0)
                    top = max(top, unit)
                    copy.put(coll, eid, (doc, deleted), base + unit)  # fresh units: never shared with ours
                if copy.changes:
                    sid += 1
                    new.append(copy)
                    writes.outbox_rows.extend(copy.row_tuples(False))
            if not new:
                return 0
            self._persist(writes)
            self._pending.extend(new)
            self._next_unit = base + top + 1
            return len(writes.outbox_rows)

    def pending_changes(self, owner: Optional[str] = None) -> List[OutboxEntry]:
        """Everything not yet acknowledged, oldest first: the in-flight batch, then pending writes.

        Each :class:`OutboxEntry` is ``(owner, changes, inflight)``; ``owner`` filters.
        """
        with self._lock:
            self._check_open()
            out = []
            for seg in self._layers():
                if owner is None or seg.owner == owner:
                    out.append(OutboxEntry(seg.owner, copy_changes(seg.changes), seg is self._inflight))
            return out

    def has_pending(self, owner: Optional[str] = None) -> bool:
        """Whether anything (pending or in flight; of ``owner`` if given) awaits the server."""
        with self._lock:
            self._check_open()
            return any(owner is None or seg.owner == owner for seg in self._layers())

    def has_outbox_entry(self, collection: str, entity_id: str) -> bool:
        """Whether a write to this entity (pending or in flight, any owner) awaits the server."""
        with self._lock:
            self._check_open()
            for seg in self._layers():
                c = seg.changes.get(collection)
                if c is not None and (entity_id in c["sets"] or entity_id in c["deletes"]):
                    return True
            return False

    def clear_pending(
        self, collection: Optional[str] = None, entity_id: Optional[str] = None, owner: Optional[str] = None
    ) -> Set[str]:
        """Drop pending (not in-flight) writes: all, one collection's, or one entity's; of ``owner`` if given.

        Reads fall back to the cache (and the in-flight batch). The in-flight batch is not touched:
        it is already on the wire; resolve it with :meth:`ack_inflight`, :meth:`reject_inflight` or
        :meth:`requeue_inflight`. Returns the collections whose pending writes were dropped.
        """
        if entity_id is not None and collection is None:
            raise ValueError(f"clear_pending: entity_id {entity_id!r} needs a collection")
        with self._lock:
            self._check_open()
            segs = [seg for seg in self._pending if owner is None or seg.owner == owner]
            writes = Writes()
            touched: Set[str] = set()
            staged: List[Tuple[Segment, str, str]] = []
            for seg in segs:
                if collection is None:
                    touched.update(seg.changes)
                    writes.segment_deletes.append(seg.sid)
                    continue
                c = seg.changes.get(collection)
                if c is None:
                    continue
                ids = (set(c["sets"]) | c["deletes"]) if entity_id is None else {entity_id}
                for eid in ids:
                    if seg.entry(collection, eid) != (None, False):
                        staged.append((seg, collection, eid))
                        writes.outbox_rows.append((seg.sid, seg.owner, False, collection, eid, None, False, 0))
                        touched.add(collection)
            if not writes.segment_deletes and not writes.outbox_rows:
                return set()
            self._persist(writes)
            for seg, coll, eid in staged:
                seg.put(coll, eid, (None, False))
            dropped = set(writes.segment_deletes)
            self._pending = [seg for seg in self._pending if seg.sid not in dropped and seg.changes]
            return touched
