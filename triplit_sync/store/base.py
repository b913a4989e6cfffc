"""The LocalStore: server-confirmed cache + outbox + query result ids + metadata.

All semantics live here, over in-memory dicts; a subclass adds persistence by implementing
:meth:`LocalStore._persist`, which receives every mutation as one :class:`Writes` record and must
apply it atomically (or raise, in which case the in-memory state is left untouched).

Layers a read sees, bottom to top::

    cache (server-confirmed)  <-  in-flight batch  <-  pending segments (oldest first)

A *segment* is a run of pending writes by one owner (an identity key chosen by the session
layer). Writes by the same owner merge into the last segment (PROTOCOL.md §6.1); a write by a
different owner starts a new segment, so reads keep the real order of writes across owners.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Set, Tuple

from .._types import Changes, Document, Timestamp
from ..errors import ClientClosedError
from ._changes import (
    Entry,
    check_changes,
    check_doc,
    check_ids,
    copy_changes,
    copy_doc,
    deep_merge,
    dumps,
    loads,
    merge_entry,
)

logger = logging.getLogger(__name__)

__all__ = ["LocalStore", "OutboxEntry", "Writes"]


class OutboxEntry(NamedTuple):
    """One group of writes waiting for the server: the in-flight batch or a pending segment."""

    owner: str
    changes: Changes
    inflight: bool


class _Segment:
    __slots__ = ("sid", "owner", "changes")

    def __init__(self, sid: int, owner: str, changes: Optional[Changes] = None) -> None:
        self.sid = sid  # orders segments in the database: in-flight < pending, older < newer
        self.owner = owner
        self.changes: Changes = changes if changes is not None else {}

    def entry(self, collection: str, entity_id: str) -> Entry:
        c = self.changes.get(collection)
        if c is None:
            return None, False
        return c["sets"].get(entity_id), entity_id in c["deletes"]

    def put(self, collection: str, entity_id: str, entry: Entry) -> None:
        pending_set, pending_delete = entry
        c = self.changes.get(collection)
        if c is None:
            if pending_set is None and not pending_delete:
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

    def rows(self) -> Iterable[Tuple[str, str, Optional[Document], bool]]:
        for coll, c in self.changes.items():
            for eid in c["deletes"]:
                yield coll, eid, c["sets"].get(eid), True
            for eid, doc in c["sets"].items():
                if eid not in c["deletes"]:
                    yield coll, eid, doc, False


class Writes:
    """Every change one store operation makes, handed to :meth:`LocalStore._persist` in one piece.

    Order of application: ``clear``, entity deletes, entity puts, outbox segment deletes, outbox
    rows, outbox flags, query ids (drops, removals, additions), metadata.
    """

    __slots__ = (
        "clear", "timestamp", "entity_deletes", "entity_puts", "segment_deletes",
        "outbox_rows", "segment_flags", "query_drops", "query_removed", "query_added", "meta",
    )

    def __init__(self) -> None:
        self.clear = False
        self.timestamp: Optional[Timestamp] = None
        #: (collection, ids) pairs
        self.entity_deletes: List[Tuple[str, Set[str]]] = []
        #: (collection, {id: document}) pairs, all stamped with ``timestamp``
        self.entity_puts: List[Tuple[str, Dict[str, Document]]] = []
        self.segment_deletes: List[int] = []
        #: (segment, owner, inflight, collection, id, pending set or None, pending delete);
        #: a row with neither a set nor a delete removes the stored row
        self.outbox_rows: List[Tuple[int, str, bool, str, str, Optional[Document], bool]] = []
        #: (segment, inflight)
        self.segment_flags: List[Tuple[int, bool]] = []
        self.query_drops: List[str] = []
        #: (query id, collection, entity id)
        self.query_removed: List[Tuple[str, str, str]] = []
        self.query_added: List[Tuple[str, str, str]] = []
        #: (key, JSON bytes)
        self.meta: List[Tuple[str, bytes]] = []


_Staged = List[Tuple[str, Dict[str, Document], Set[str]]]


def _check_owner(owner: Any) -> str:
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"owner must be a non-empty string (an identity key), got {owner!r}")
    return owner


def _check_timestamp(timestamp: Any) -> Timestamp:
    if not isinstance(timestamp, (list, tuple)) or len(timestamp) != 3:
        raise ValueError(f"timestamp must be a [ms, counter, 'server'] triple, got {timestamp!r}")
    return list(timestamp)


def _check_id_map(arg: str, value: Any) -> Dict[str, Set[str]]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{arg} must be a mapping of collection -> set of ids, got {type(value).__name__}")
    out: Dict[str, Set[str]] = {}
    for coll, ids in value.items():
        if not isinstance(coll, str) or not coll:
            raise ValueError(f"{arg}: collection name must be a non-empty string, got {coll!r}")
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise TypeError(f"{arg}[{coll!r}] must be a set or list of ids, got {ids!r}")
        out[coll] = check_ids(coll, ids, arg)
    return out


class LocalStore(ABC):
    """The client's local database: cache, outbox, query result ids and metadata.

    Thread-safe: one lock guards every call, so user threads may write while the reader thread
    applies server data. Documents are in encoded (wire) form.

    **Returned documents are shared, never copied**: callers must not mutate what :meth:`get`,
    :meth:`scan`, :meth:`get_cached`, :meth:`next_batch` or :meth:`inflight` return. The store never
    mutates a document after handing it out (merges build new dicts), so a returned document is a
    stable snapshot. Documents passed to :meth:`apply_server_changes` become the store's property
    (no copy); documents passed to :meth:`add_local_changes` are copied.

    >>> store = MemoryStore()
    >>> store.apply_server_changes({"todos": {"sets": {"t1": {"id": "t1", "done": False}}, "deletes": set()}},
    ...                            [1, 0, "server"])
    {'todos'}
    >>> store.add_local_changes({"todos": {"sets": {"t1": {"done": True}}, "deletes": set()}}, owner="alice")
    {'todos'}
    >>> store.get("todos", "t1"), store.get_cached("todos", "t1")
    ({'id': 't1', 'done': True}, {'id': 't1', 'done': False})
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._closed = False
        self._reset()

    def _reset(self) -> None:
        self._cache: Dict[str, Dict[str, Document]] = {}
        self._timestamps: Dict[str, Dict[str, Timestamp]] = {}
        self._inflight: Optional[_Segment] = None
        self._pending: List[_Segment] = []
        self._query_ids: Dict[str, Dict[str, Set[str]]] = {}
        self._meta: Dict[str, bytes] = {}

    # --- persistence hooks --------------------------------------------------------------------

    @abstractmethod
    def _persist(self, writes: Writes) -> None:
        """Apply ``writes`` durably and atomically, or raise and change nothing."""

    def _close_storage(self) -> None:
        """Release files and connections (called once, under the lock)."""

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(f"{type(self).__name__} is closed")

    # --- reads --------------------------------------------------------------------------------

    def _layers(self) -> List[_Segment]:
        if self._inflight is None:
            return self._pending
        return [self._inflight, *self._pending]

    @staticmethod
    def _overlay(collection: str, entity_id: str, doc: Optional[Document], layers: Iterable[_Segment]) -> Optional[Document]:
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

    def get(self, collection: str, entity_id: str) -> Optional[Document]:
        """The entity as the user sees it: the cache with the outbox overlaid, or ``None``.

        >>> store.get("todos", "t1")  # doctest: +SKIP
        {'id': 't1', 'done': True}
        """
        with self._lock:
            self._check_open()
            c = self._cache.get(collection)
            doc = c.get(entity_id) if c is not None else None
            if self._inflight is None and not self._pending:
                return doc
            return self._overlay(collection, entity_id, doc, self._layers())

    def scan(self, collection: str) -> List[Document]:
        """Every visible document of ``collection`` (cache with the outbox overlaid), in no set order.

        A fresh list (a snapshot) of shared documents; the cost beyond copying the list is
        proportional to the outbox, not the cache.
        """
        with self._lock:
            self._check_open()
            cache = self._cache.get(collection)
            layers = [seg for seg in self._layers() if collection in seg.changes]
            if not layers:
                return list(cache.values()) if cache else []
            touched: Set[str] = set()
            for seg in layers:
                c = seg.changes[collection]
                touched.update(c["deletes"])
                touched.update(c["sets"])
            view = dict(cache) if cache else {}
            for eid in touched:
                doc = self._overlay(collection, eid, view.get(eid), layers)
                if doc is None:
                    view.pop(eid, None)
                else:
                    view[eid] = doc
            return list(view.values())

    def get_cached(self, collection: str, entity_id: str) -> Optional[Document]:
        """The server-confirmed document only (no outbox), or ``None``."""
        with self._lock:
            self._check_open()
            c = self._cache.get(collection)
            return c.get(entity_id) if c is not None else None

    def cached_ids(self, collection: str) -> Set[str]:
        """Ids of the server-confirmed entities of ``collection`` (a fresh set)."""
        with self._lock:
            self._check_open()
            return set(self._cache.get(collection, ()))

    def entity_timestamp(self, collection: str, entity_id: str) -> Optional[Timestamp]:
        """The server timestamp under which the cached entity last changed, or ``None``."""
        with self._lock:
            self._check_open()
            t = self._timestamps.get(collection)
            ts = t.get(entity_id) if t is not None else None
            return list(ts) if ts is not None else None

    def collections(self) -> List[str]:
        """Sorted names of the collections with cached entities or waiting writes."""
        with self._lock:
            self._check_open()
            names = set(self._cache)
            for seg in self._layers():
                names.update(seg.changes)
            return sorted(names)

    # --- server data --------------------------------------------------------------------------

    def _stage_server(self, changes: Changes, what: str) -> Tuple[_Staged, Set[str]]:
        """Compute (without changing anything) what applying server ``changes`` does to the cache."""
        staged: _Staged = []
        changed: Set[str] = set()
        for coll, cc in changes.items():
            cache = self._cache.get(coll) or {}
            deleted: Set[str] = set()
            for eid in cc.get("deletes") or ():
                if eid in cache:
                    deleted.add(eid)
            puts: Dict[str, Document] = {}
            for eid, patch in (cc.get("sets") or {}).items():
                if type(patch) is not dict or type(eid) is not str:
                    check_doc(coll, eid, patch, what)
                old = None if eid in deleted else cache.get(eid)
                if old is None:
                    if "id" in patch:
                        puts[eid] = patch
                    # else: an update of an entity we don't have, ignored as the server does
                else:
                    new = deep_merge(old, patch)
                    if new != old:
                        puts[eid] = new
            if puts or deleted:
                staged.append((coll, puts, deleted))
                changed.add(coll)
        return staged, changed

    def _commit_entities(self, staged: _Staged, timestamp: Timestamp) -> None:
        for coll, puts, deleted in staged:
            cache = self._cache.setdefault(coll, {})
            stamps = self._timestamps.setdefault(coll, {})
            for eid in deleted:
                del cache[eid]
                stamps.pop(eid, None)
            cache.update(puts)
            stamps.update(dict.fromkeys(puts, timestamp))
            if not cache:
                del self._cache[coll]
                self._timestamps.pop(coll, None)

    @staticmethod
    def _entity_writes(writes: Writes, staged: _Staged, timestamp: Timestamp) -> None:
        writes.timestamp = timestamp
        for coll, puts, deleted in staged:
            if deleted:
                writes.entity_deletes.append((coll, deleted))
            if puts:
                writes.entity_puts.append((coll, puts))

    def apply_server_changes(self, changes: Changes, timestamp: Timestamp) -> Set[str]:
        """Apply server data (ENTITY_DATA) to the cache in one transaction; return the changed collections.

        Per collection deletes first, then sets deep-merged (PROTOCOL.md §3.3). A set without
        ``"id"`` for an entity not in the cache is ignored, as the server does. The documents in
        ``changes`` become the store's (they are not copied): don't mutate them afterwards.

        >>> store.apply_server_changes({"todos": {"sets": {}, "deletes": {"t1"}}}, [2, 0, "server"])  # doctest: +SKIP
        {'todos'}
        """
        check_changes(changes, "apply_server_changes")
        ts = _check_timestamp(timestamp)
        with self._lock:
            self._check_open()
            staged, changed = self._stage_server(changes, "apply_server_changes")
            if staged:
                writes = Writes()
                self._entity_writes(writes, staged, ts)
                self._persist(writes)
                self._commit_entities(staged, ts)
            return changed

    # --- outbox -------------------------------------------------------------------------------

    def add_local_changes(self, changes: Changes, owner: str) -> Set[str]:
        """Queue local writes of ``owner``; durable before it returns. Returns the collections written.

        Merged per entity into the owner's latest pending writes (PROTOCOL.md §6.1): later sets
        deep-merge into earlier ones; a delete replaces a pending update; a delete of a pending
        insert cancels both unless the entity also exists below it (cache or earlier writes), in
        which case the delete is kept; a set after a delete keeps both.

        >>> store.add_local_changes({"todos": {"sets": {"t2": {"id": "t2", "done": False}}, "deletes": set()}},
        ...                         owner="alice")  # doctest: +SKIP
        {'todos'}
        """
        _check_owner(owner)
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
                seg = _Segment(self._next_sid(), owner)
                below = self._layers()
                new_segment = True
            staged: Dict[Tuple[str, str], Entry] = {}
            for coll, deletes, sets in incoming:
                cache = self._cache.get(coll) or {}
                for eid in deletes | sets.keys():
                    staged[(coll, eid)] = merge_entry(
                        seg.entry(coll, eid),
                        eid in deletes,
                        sets.get(eid),
                        lambda: self._overlay(coll, eid, cache.get(eid), below) is not None,  # noqa: B023
                    )
            writes = Writes()
            writes.outbox_rows = [
                (seg.sid, owner, False, coll, eid, entry[0], entry[1]) for (coll, eid), entry in staged.items()
            ]
            self._persist(writes)
            for (coll, eid), entry in staged.items():
                seg.put(coll, eid, entry)
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
        _check_owner(owner)
        with self._lock:
            self._check_open()
            if self._inflight is not None:
                return copy_changes(self._inflight.changes) if self._inflight.owner == owner else None
            mine = [seg for seg in self._pending if seg.owner == owner]
            if not mine:
                return None
            sids = [seg.sid for seg in self._pending]
            batch = _Segment(min(sids) - 1, owner)
            for seg in mine:
                for coll, eid, pending_set, pending_delete in list(seg.rows()):
                    cache = self._cache.get(coll) or {}
                    batch.put(coll, eid, merge_entry(
                        batch.entry(coll, eid), pending_delete, pending_set,
                        lambda: eid in cache,  # noqa: B023
                    ))
            writes = Writes()
            writes.segment_deletes = [seg.sid for seg in mine]
            writes.outbox_rows = [
                (batch.sid, owner, True, coll, eid, doc, deleted) for coll, eid, doc, deleted in batch.rows()
            ]
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

    def ack_inflight(self, timestamp: Timestamp) -> Set[str]:
        """The server committed the in-flight batch under ``timestamp`` (CHANGES_ACK).

        Applies it to the cache as server data and clears it, in one transaction. Returns the
        collections whose cache changed (reads already showed the batch, so views rarely change).
        Without a batch in flight: nothing happens and an empty set is returned.
        """
        ts = _check_timestamp(timestamp)
        with self._lock:
            self._check_open()
            seg = self._inflight
            if seg is None:
                logger.warning("ack_inflight: no batch in flight; ignoring the ack")
                return set()
            staged, changed = self._stage_server(seg.changes, "ack_inflight")
            writes = Writes()
            self._entity_writes(writes, staged, ts)
            writes.segment_deletes = [seg.sid]
            self._persist(writes)
            self._commit_entities(staged, ts)
            self._inflight = None
            return changed

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
            staged: List[Tuple[_Segment, str, str]] = []
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
                        writes.outbox_rows.append((seg.sid, seg.owner, False, collection, eid, None, False))
                        touched.add(collection)
            if not writes.segment_deletes and not writes.outbox_rows:
                return set()
            self._persist(writes)
            for seg, coll, eid in staged:
                seg.put(coll, eid, (None, False))
            dropped = set(writes.segment_deletes)
            self._pending = [seg for seg in self._pending if seg.sid not in dropped and seg.changes]
            return touched

    # --- query result ids ---------------------------------------------------------------------

    def query_ids(self, query_id: str) -> Dict[str, Set[str]]:
        """``{collection: ids}`` recorded for ``query_id`` (fresh sets; empty if unknown)."""
        with self._lock:
            self._check_open()
            return {coll: set(ids) for coll, ids in self._query_ids.get(query_id, {}).items()}

    def update_query_ids(
        self, query_id: str, added: Mapping[str, Iterable[str]], removed: Mapping[str, Iterable[str]]
    ) -> None:
        """Record a change of ``query_id``'s result ids: ``removed`` first, then ``added``.

        Costs in proportion to the change, not to the recorded set.
        """
        if not isinstance(query_id, str) or not query_id:
            raise ValueError(f"query_id must be a non-empty string, got {query_id!r}")
        add = _check_id_map("added", added)
        rem = _check_id_map("removed", removed)
        with self._lock:
            self._check_open()
            current = self._query_ids.get(query_id, {})
            writes = Writes()
            really_removed: Dict[str, Set[str]] = {}
            for coll, ids in rem.items():
                have = current.get(coll)
                if have:
                    gone = (ids & have) - add.get(coll, set())
                    if gone:
                        really_removed[coll] = gone
                        writes.query_removed.extend((query_id, coll, eid) for eid in gone)
            really_added: Dict[str, Set[str]] = {}
            for coll, ids in add.items():
                new = ids - current.get(coll, set())
                if new:
                    really_added[coll] = new
                    writes.query_added.extend((query_id, coll, eid) for eid in new)
            if not writes.query_removed and not writes.query_added:
                return
            self._persist(writes)
            current = self._query_ids.setdefault(query_id, {})
            for coll, ids in really_removed.items():
                current[coll] -= ids
                if not current[coll]:
                    del current[coll]
            for coll, ids in really_added.items():
                current.setdefault(coll, set()).update(ids)
            if not current:
                del self._query_ids[query_id]

    def drop_query(self, query_id: str) -> None:
        """Forget ``query_id``'s result ids."""
        with self._lock:
            self._check_open()
            if query_id not in self._query_ids:
                return
            writes = Writes()
            writes.query_drops = [query_id]
            self._persist(writes)
            del self._query_ids[query_id]

    def query_id_list(self) -> List[str]:
        """The query ids that have recorded result ids, sorted."""
        with self._lock:
            self._check_open()
            return sorted(self._query_ids)

    # --- metadata -----------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A metadata value (a fresh copy), or ``default``."""
        with self._lock:
            self._check_open()
            raw = self._meta.get(key)
        return default if raw is None else loads(raw)

    def set_meta(self, key: str, value: Any) -> None:
        """Store a small JSON value under ``key``.

        >>> store.set_meta("latest_server_timestamp", [5, 0, "server"])  # doctest: +SKIP
        """
        if not isinstance(key, str) or not key:
            raise ValueError(f"meta key must be a non-empty string, got {key!r}")
        try:
            raw = dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"set_meta: value for {key!r} is not JSON-serializable: {exc}") from None
        with self._lock:
            self._check_open()
            if self._meta.get(key) == raw:
                return
            writes = Writes()
            writes.meta = [(key, raw)]
            self._persist(writes)
            self._meta[key] = raw

    # --- lifecycle ----------------------------------------------------------------------------

    def clear(self) -> None:
        """Empty everything: cache, outbox (including the in-flight batch), query ids, metadata."""
        with self._lock:
            self._check_open()
            writes = Writes()
            writes.clear = True
            self._persist(writes)
            self._reset()

    def close(self) -> None:
        """Release the storage; later calls raise :class:`~triplit_sync.errors.ClientClosedError`. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_storage()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "LocalStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        with self._lock:
            n = sum(len(c) for c in self._cache.values())
            return (
                f"<{type(self).__name__} entities={n} pending={len(self._pending)} "
                f"inflight={self._inflight is not None}{' closed' if self._closed else ''}>"
            )
