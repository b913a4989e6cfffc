"""Order indexes: a collection's cached ids sorted by one attribute, kept by the store.

A local query with ``order [attr, ...]`` and a ``limit`` needs only the first ``limit`` matches
in that order (and whatever ties with the last of them), not a scan of the whole cache. The
store builds an index the first time such a query runs on a large collection, keeps it up to
date on small changes and drops it on large ones (the next query rebuilds it: cheaper than
thousands of sorted inserts). Keys compare exactly as the query engine's sort keys do
(:func:`~triplit_sync.query._values.order_key`); ties come in no set order, the engine
re-sorts the candidates it gets (ties by id, later order clauses), so only the set matters.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from operator import itemgetter
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

from .._util.types import Document
from ..query import order_key

__all__ = ["OrderIndex", "Predicate"]

Predicate = Callable[[Any], bool]

# Keys of one kind compare natively, as the engine's sort does; anything else uses order_key.
_STR, _NUM, _ANY = "str", "num", "any"


class _Mismatch(Exception):
    """A value that does not fit the index's key kind: the index must be rebuilt."""


class OrderIndex:
    """The ids of one collection's cached documents in the order of one attribute's sort key."""

    __slots__ = ("attr", "kind", "keys", "ids")

    def __init__(self, attr: str, docs: Dict[str, Document]) -> None:
        self.attr = attr
        values: List[Any] = [d.get(attr) for d in docs.values()]
        types = set(map(type, values))
        keys: List[Any]
        if types == {str} and "".join(values).isascii():
            self.kind, keys = _STR, values
        elif types and types <= {int, float}:
            self.kind, keys = _NUM, values
        else:
            self.kind, keys = _ANY, [order_key(v) for v in values]
        ids = list(docs)
        if len(ids) < 2:
            self.keys, self.ids = keys, ids
            return
        # itemgetter gathers in C: a list comprehension over the sorted positions took as long
        # as the sort (every access a cache miss).
        gather = itemgetter(*sorted(range(len(keys)), key=keys.__getitem__))
        self.keys = list(gather(keys))
        self.ids = list(gather(ids))

    @property
    def native_str(self) -> bool:
        """Whether every key is an ASCII string (compared as is)."""
        return self.kind is _STR

    def __len__(self) -> int:
        return len(self.ids)

    def key(self, doc: Document) -> Any:
        v: Any = doc.get(self.attr)
        if self.kind is _ANY:
            return order_key(v)
        t = type(v)
        if self.kind is _STR:
            if t is str and v.isascii():
                return v
        elif t is int or t is float:
            return v
        raise _Mismatch()

    def remove(self, eid: str, doc: Document) -> None:
        k = self.key(doc)
        keys = self.keys
        pos = self.ids.index(eid, bisect_left(keys, k), bisect_right(keys, k))
        del keys[pos]
        del self.ids[pos]

    def add(self, eid: str, doc: Document) -> None:
        k = self.key(doc)
        pos = bisect_right(self.keys, k)
        self.keys.insert(pos, k)
        self.ids.insert(pos, eid)

    def update(self, cache: Dict[str, Document], puts: Dict[str, Document], deleted: Set[str]) -> bool:
        """Follow a change of the cache (called before it is applied); False: rebuild instead."""
        try:
            for eid in deleted:
                self.remove(eid, cache[eid])
            for eid, doc in puts.items():
                old = None if eid in deleted else cache.get(eid)
                if old is not None:
                    if self.key(old) == self.key(doc):
                        continue
                    self.remove(eid, old)
                self.add(eid, doc)
        except (_Mismatch, ValueError):
            return False
        return True

    def equal(self, value: Any) -> Optional[List[str]]:
        """The ids whose key is ``value``'s (``=`` in the engine), or None when ``value`` is not a
        key of this index's kind."""
        try:
            k = self.key({self.attr: value})
        except _Mismatch:
            return None
        keys = self.keys
        return self.ids[bisect_left(keys, k):bisect_right(keys, k)]

    def matches(self, cache: Dict[str, Document], desc: bool, pred: Optional[Predicate], limit: int,
                skip: Set[str]) -> List[Document]:
        """The first ``limit`` documents passing ``pred`` in key order, and every one tying with
        the last of them; ids in ``skip`` are left out (the caller adds their visible form)."""
        keys, ids = self.keys, self.ids
        out: List[Document] = []
        n = len(ids)
        found = False
        boundary: Any = None
        for i in (range(n - 1, -1, -1) if desc else range(n)):
            if found and keys[i] != boundary:
                break
            eid = ids[i]
            if eid in skip:
                continue
            d = cache[eid]
            if pred is None or pred(d):
                out.append(d)
                if not found and len(out) >= limit:
                    found, boundary = True, keys[i]
        return out


class Indexes:
    """The order indexes of one store, built on demand, the most recently used kept."""

    __slots__ = ("by_key",)

    MAX = 16

    def __init__(self) -> None:
        self.by_key: Dict[tuple, OrderIndex] = {}  # type: ignore[type-arg]

    def get(self, collection: str, attr: str, docs: Dict[str, Document]) -> OrderIndex:
        key = (collection, attr)
        index = self.by_key.pop(key, None)
        if index is None or len(index) != len(docs):
            index = OrderIndex(attr, docs)
        self.by_key[key] = index  # to the end: the most recently used
        while len(self.by_key) > self.MAX:
            del self.by_key[next(iter(self.by_key))]
        return index

    def changed(self, collection: str, cache: Dict[str, Document], puts: Dict[str, Document],
                deleted: Iterable[str]) -> None:
        """``collection``'s cache is about to take ``puts`` and lose ``deleted``."""
        if not self.by_key:
            return
        gone = set(deleted)
        for key in [k for k in self.by_key if k[0] == collection]:
            index = self.by_key[key]
            # Many changes at once (a first load, a large answer): rebuilding later is cheaper.
            if len(puts) + len(gone) > max(64, len(index) // 8) or not index.update(cache, puts, gone):
                del self.by_key[key]

    def clear(self) -> None:
        self.by_key.clear()
