"""Outbox segments: a run of pending writes by one owner, the merge rule for two writes to one
entity, and how pending writes overlay a cached entity (PROTOCOL.md §6). Plain data, no lock:
the outbox (``_outbox.py``) guards them."""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

from .._util.types import Changes, Document
from ._changes import deep_merge

__all__ = ["Entry", "Key", "OutboxEntry", "OutboxRow", "Segment", "merge_entry", "overlay"]

Entry = Tuple[Optional[Document], bool]
"""One entity's state inside an outbox segment: (pending set or None, pending delete)."""

OutboxRow = Tuple[int, str, bool, str, str, Optional[Document], bool, int]
"""(segment, owner, in flight, collection, id, pending set or None, pending delete, unit)"""


def merge_entry(
    entry: Entry,
    delete: bool,
    patch: Optional[Document],
    visible_below: Callable[[], bool],
) -> Entry:
    """Merge one entity's new local write (a delete, then a set) into its outbox entry.

    - a later set deep-merges into an earlier one;
    - a delete replaces a pending update;
    - a delete of a pending insert cancels both, unless the entity is visible *below* this
      outbox segment (cache, in-flight batch, earlier segments): then the "insert" was really an
      upsert of an existing entity and the delete must still reach the server;
    - a set after a delete keeps both (the server deletes, then re-creates); an update (a set
      without ``id``) after a delete is dropped, as the server would ignore it.
    """
    pending_set, pending_delete = entry
    if delete:
        if pending_set is not None and "id" in pending_set and not pending_delete and not visible_below():
            pending_set, pending_delete = None, False
        else:
            pending_set, pending_delete = None, True
    if patch is not None and not (delete and "id" not in patch):
        pending_set = patch if pending_set is None else deep_merge(pending_set, patch)
        if pending_delete and "id" not in pending_set:
            # dead on the server (the entity is gone by then); kept, it would leak into a later re-insert
            pending_set = None
    return pending_set, pending_delete


class OutboxEntry(NamedTuple):
    """One group of writes waiting for the server: the in-flight batch or a pending segment."""

    owner: str
    changes: Changes
    inflight: bool


Key = Tuple[str, str]
"""(collection, entity id)"""


class Segment:
    """One owner's run of writes: ``changes`` in the Changes shape, at most one entry per entity.

    ``units`` maps each entity entry to its unit (see the module docstring); ``members`` is the
    reverse index. A segment built without units (a transaction being collected) has none.
    """

    __slots__ = ("sid", "owner", "changes", "units", "members")

    def __init__(self, sid: int, owner: str, changes: Optional[Changes] = None) -> None:
        self.sid = sid  # orders segments in the database: in-flight < pending, older < newer
        self.owner = owner
        self.changes: Changes = changes if changes is not None else {}
        self.units: Dict[Key, int] = {}
        self.members: Dict[int, Set[Key]] = {}

    def entry(self, collection: str, entity_id: str) -> Entry:
        c = self.changes.get(collection)
        if c is None:
            return None, False
        return c["sets"].get(entity_id), entity_id in c["deletes"]

    def put(self, collection: str, entity_id: str, entry: Entry, unit: Optional[int] = None) -> None:
        """Set one entity's entry; with ``unit``, the entry belongs to that unit from now on."""
        pending_set, pending_delete = entry
        key = (collection, entity_id)
        c = self.changes.get(collection)
        if c is None:
            if pending_set is None and not pending_delete:
                self._leave(key)
                return
            c = self.changes[collection] = {"sets": {}, "deletes": set()}
        if pending_set is None:
            c["sets"].pop(entity_id, None)
        else:
            c["sets"][entity_id] = pending_set
        if pending_delete:
            c["deletes"].add(entity_id)
        else:
            c["deletes"].discard(entity_id)
        if not c["sets"] and not c["deletes"]:
            del self.changes[collection]
        if pending_set is None and not pending_delete:
            self._leave(key)
        elif unit is not None:
            self._leave(key)
            self.units[key] = unit
            self.members.setdefault(unit, set()).add(key)

    def _leave(self, key: Key) -> None:
        unit = self.units.pop(key, None)
        if unit is not None:
            members = self.members[unit]
            members.discard(key)
            if not members:
                del self.members[unit]

    def joined_unit(self, keys: Iterable[Key], unit: int) -> Tuple[int, Set[Key]]:
        """The unit that ``keys`` (entering with ``unit``) end up in, and the entries already
        here that must move to it: every unit sharing an entity with ``keys`` merges into the
        oldest of them. Changes nothing."""
        touched = {self.units[k] for k in keys if k in self.units}
        final = min(touched | {unit})
        moved: Set[Key] = set()
        for u in touched:
            if u != final:
                moved |= self.members[u]
        return final, moved

    def relabel(self, keys: Iterable[Key], unit: int) -> None:
        for key in keys:
            self._leave(key)
            self.units[key] = unit
            self.members.setdefault(unit, set()).add(key)

    def rows(self) -> Iterable[Tuple[str, str, Optional[Document], bool]]:
        for coll, c in self.changes.items():
            for eid in c["deletes"]:
                yield coll, eid, c["sets"].get(eid), True
            for eid, doc in c["sets"].items():
                if eid not in c["deletes"]:
                    yield coll, eid, doc, False

    def row_tuples(self, inflight: bool) -> List["OutboxRow"]:
        """This segment's rows as :class:`Writes` outbox rows."""
        units = self.units
        return [(self.sid, self.owner, inflight, coll, eid, doc, deleted, units.get((coll, eid), 0))
                for coll, eid, doc, deleted in self.rows()]


def overlay(
    collection: str, entity_id: str, doc: Optional[Document], layers: Iterable[Segment]
) -> Optional[Document]:
    """``doc`` (the cached copy, or None) as the outbox ``layers``, oldest first, make it look."""
    for seg in layers:
        c = seg.changes.get(collection)
        if c is None:
            continue
        if entity_id in c["deletes"]:
            doc = None
        patch = c["sets"].get(entity_id)
        if patch is not None:
            if doc is None:
                # the server ignores an update of a missing entity; only an insert creates one
                doc = patch if "id" in patch else None
            else:
                doc = deep_merge(doc, patch)
    return doc
