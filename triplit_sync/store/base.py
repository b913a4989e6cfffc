"""The LocalStore: server-confirmed cache + outbox + query result ids + metadata.

All semantics live here, over in-memory dicts; a subclass adds persistence by implementing
:meth:`LocalStore._persist`, which receives every mutation as one :class:`Writes` record and must
apply it atomically (or raise, in which case the in-memory state is left untouched).

Layers a read sees, bottom to top::

    cache (server-confirmed)  <-  in-flight batch  <-  pending segments (oldest first)

The outbox methods (writes, batches, owners) are in :mod:`._outbox`.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from .._util.types import Changes, Document, Timestamp
from ..errors import ClientClosedError
from ._changes import check_changes, check_doc, check_id_map, check_timestamp, deep_merge, dumps, loads
from ._index import Indexes, Predicate
from ._outbox import OutboxEntry, OutboxMixin, Segment, _Staged, overlay
from ._writes import Writes

logger = logging.getLogger(__name__)

__all__ = ["LocalStore", "OutboxEntry", "Writes"]

# The entities this store's writes put on the server, kept as the result ids of a reserved query
# (engine query ids are hashes: never this): a delete of one of them may be an eviction, which
# the engine must check instead of applying, also after the process restarted.
WRITTEN = "\x00written"


class LocalStore(OutboxMixin, ABC):
    """The client's local database: cache, outbox, query result ids and metadata.

    Thread-safe: one lock guards every call, so user threads may write while the reader thread
    applies server data. Documents are in encoded (wire) form.

    **Returned documents are shared, never copied**: callers must not mutate what :meth:`get`,
    :meth:`scan`, :meth:`get_cached`, :meth:`next_batch` or :meth:`inflight` return. The store never
    mutates a document after handing it out (merges build new dicts), so a returned document is a
    stable snapshot. Documents passed to :meth:`apply_server_changes` become the store's property
    (no copy); documents passed to :meth:`add_local_changes` are copied.

    >>> from triplit_sync.store import MemoryStore
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
        self._inflight: Optional[Segment] = None
        self._pending: List[Segment] = []
        self._query_ids: Dict[str, Dict[str, Set[str]]] = {}
        self._meta: Dict[str, bytes] = {}
        self._next_unit = 1  # the unit of the next add_local_changes (see _outbox.py)
        self._indexes = Indexes()

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

    def _layers(self) -> List[Segment]:
        if self._inflight is None:
            return self._pending
        return [self._inflight, *self._pending]

    _overlay = staticmethod(overlay)

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

    def _touched(self, collection: str) -> Tuple[List[Segment], Set[str]]:
        """The outbox layers writing ``collection`` and the ids they write (their visible form
        is the overlay, not the cached document)."""
        layers = [seg for seg in self._layers() if collection in seg.changes]
        touched: Set[str] = set()
        for seg in layers:
            c = seg.changes[collection]
            touched.update(c["deletes"])
            touched.update(c["sets"])
        return layers, touched

    #: Collections smaller than this are scanned: an index pays off only on large ones.
    INDEX_MIN_ENTITIES = 2000

    def ordered_matches(self, collection: str, attr: str, desc: bool, pred: Optional[Predicate],
                        limit: int) -> Optional[List[Document]]:
        """Visible documents passing ``pred``: the first ``limit`` in the order of ``attr``'s sort
        key (descending with ``desc``) and all that tie with the last of them, in no set order;
        ``None`` when the collection is small enough to scan (the caller scans then).

        The cost grows with how far the matches are into the order and with the outbox, not with
        the cache. ``pred`` runs under the store's lock.
        """
        with self._lock:
            self._check_open()
            cache = self._cache.get(collection) or {}
            if len(cache) < self.INDEX_MIN_ENTITIES:
                return None
            layers, touched = self._touched(collection)
            index = self._indexes.get(collection, attr, cache)
            if attr == "id" and not index.native_str:
                return None  # the engine's id order is not the sort key order for non-string ids
            out = index.matches(cache, desc, pred, limit, touched)
            for eid in touched:
                doc = self._overlay(collection, eid, cache.get(eid), layers)
                if doc is not None and (pred is None or pred(doc)):
                    out.append(doc)
            return out

    def equal_matches(self, collection: str, attr: str, value: Any) -> Optional[List[Document]]:
        """Every visible document whose ``attr`` may equal ``value`` (a string or a number): a
        superset of the ``=`` matches, from the index of ``attr``; ``None`` to scan instead."""
        with self._lock:
            self._check_open()
            cache = self._cache.get(collection) or {}
            if len(cache) < self.INDEX_MIN_ENTITIES:
                return None
            ids = self._indexes.get(collection, attr, cache).equal(value)
            if ids is None:
                return None
            layers, touched = self._touched(collection)
            if not layers:
                return [cache[eid] for eid in ids]
            out = [cache[eid] for eid in ids if eid not in touched]
            for eid in touched:
                doc = self._overlay(collection, eid, cache.get(eid), layers)
                if doc is not None:
                    out.append(doc)
            return out

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

    def _stage_server(self, changes: Changes, what: str, replace: bool = False) -> Tuple[_Staged, Set[str]]:
        """Compute (without changing anything) what applying server ``changes`` does to the cache.

        ``replace``: a set with an ``"id"`` is the whole document and replaces the cached one
        (server data); otherwise sets are merged into it (acknowledged writes, as the server did).
        """
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
                        own = patch["id"]
                        # Keyed by the document's own id string where equal: one string, not two.
                        puts[own if own == eid else eid] = patch
                    # else: an update of an entity we don't have, ignored as the server does
                else:
                    new = patch if replace and "id" in patch else deep_merge(old, patch)
                    if new != old:
                        puts[eid] = new
            if puts or deleted:
                staged.append((coll, puts, deleted))
                changed.add(coll)
        return staged, changed

    def _commit_entities(self, staged: _Staged, timestamp: Timestamp, written: Optional[Changes] = None) -> None:
        marks = self._query_ids.setdefault(WRITTEN, {})
        for coll, puts, deleted in staged:
            if deleted and marks.get(coll):
                marks[coll] -= deleted
                if not marks[coll]:
                    del marks[coll]
        for coll, c in (written or {}).items():
            if c["sets"]:
                marks.setdefault(coll, set()).update(c["sets"])
        for coll, puts, deleted in staged:
            cache = self._cache.setdefault(coll, {})
            self._indexes.changed(coll, cache, puts, deleted)
            stamps = self._timestamps.setdefault(coll, {})
            for eid in deleted:
                del cache[eid]
                stamps.pop(eid, None)
            cache.update(puts)
            stamps.update(dict.fromkeys(puts, timestamp))
            if not cache:
                del self._cache[coll]
                self._timestamps.pop(coll, None)
        if not marks:
            del self._query_ids[WRITTEN]

    def _entity_writes(self, writes: Writes, staged: _Staged, timestamp: Timestamp,
                       written: Optional[Changes] = None) -> None:
        """The rows for ``staged``; ``written``: the acknowledged own writes to mark."""
        writes.timestamp = timestamp
        marks = self._query_ids.get(WRITTEN, {})
        unmarked: Dict[str, Set[str]] = {}
        for coll, puts, deleted in staged:
            if deleted:
                writes.entity_deletes.append((coll, deleted))
                gone = deleted & marks.get(coll, set())
                if gone:
                    unmarked[coll] = gone
                    writes.query_removed.extend((WRITTEN, coll, eid) for eid in gone)
            if puts:
                writes.entity_puts.append((coll, puts))
        # As _commit_entities: removals first, then the new marks (a delete and a set of one id
        # in a batch is a re-creation).
        for coll, c in (written or {}).items():
            marked = marks.get(coll, set()) - unmarked.get(coll, set())
            writes.query_added.extend((WRITTEN, coll, eid) for eid in c["sets"] if eid not in marked)

    def apply_server_changes(self, changes: Changes, timestamp: Timestamp) -> Set[str]:
        """Apply server data (ENTITY_DATA) to the cache in one transaction; return the changed collections.

        Per collection deletes first, then sets. A set with ``"id"`` is a whole document (the
        server sends nothing else, PROTOCOL.md §5.3) and replaces the cached one: merging would
        keep what an entity deleted and created again in between no longer has. A set without
        ``"id"`` is deep-merged (§3.3), and ignored for an entity not in the cache, as the
        server does. The documents in
        ``changes`` become the store's (they are not copied): don't mutate them afterwards.

        >>> gone = {"todos": {"sets": {}, "deletes": {"t1"}}}
        >>> store.apply_server_changes(gone, [2, 0, "server"])  # doctest: +SKIP
        {'todos'}
        """
        check_changes(changes, "apply_server_changes")
        ts = check_timestamp(timestamp)
        with self._lock:
            self._check_open()
            staged, changed = self._stage_server(changes, "apply_server_changes", replace=True)
            if staged:
                writes = Writes()
                self._entity_writes(writes, staged, ts)
                self._persist(writes)
                self._commit_entities(staged, ts)
            return changed

    def evict(self, ids: Mapping[str, Iterable[str]]) -> Set[str]:
        """Drop cached entities the client no longer tracks (no live query holds them any more).

        Pending writes on them stay. Returns the collections that changed.
        """
        deletes = check_id_map("ids", ids)
        changes: Changes = {coll: {"sets": {}, "deletes": eids} for coll, eids in deletes.items()}
        return self.apply_server_changes(changes, [0, 0, "server"])

    def abandon_after_fork(self) -> None:
        """Forget (without closing) what belongs to the parent process."""

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
        add = check_id_map("added", added)
        rem = check_id_map("removed", removed)
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
            return sorted(q for q in self._query_ids if q != WRITTEN)

    # --- own writes ---------------------------------------------------------------------------

    def written(self, collection: str, entity_id: str) -> bool:
        """Whether an acknowledged write of this store put the cached entity on the server
        (the mark lasts until the entity leaves the cache, across restarts)."""
        with self._lock:
            return entity_id in self._query_ids.get(WRITTEN, {}).get(collection, ())

    def forget_written(self) -> None:
        """Drop every own-write mark (another identity's writes are not this one's)."""
        self.drop_query(WRITTEN)

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
        """Release the storage; later calls raise :class:`~triplit_sync.errors.ClientClosedError`.

        Idempotent.
        """
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
