"""MemoryStore: the LocalStore with nothing persisted (state lives and dies with the process)."""

from __future__ import annotations

from ._writes import Writes
from .base import LocalStore

__all__ = ["MemoryStore"]


class MemoryStore(LocalStore):
    """A :class:`~triplit_sync.store.base.LocalStore` kept in memory only.

    >>> store = MemoryStore()
    >>> store.set_meta("k", {"a": 1}); store.get_meta("k")
    {'a': 1}
    """

    @classmethod
    def detached_from(cls, store: LocalStore) -> "MemoryStore":
        """In a forked child: an in-memory copy of ``store``'s cache and query ids, without the
        outbox; ``store`` forgets (without closing) what belongs to the parent process.

        The parent keeps its files and connections (the child must never close or write them)
        and its pending writes (sending them from the child too would duplicate them).
        """
        child = cls()
        child._cache, child._timestamps = store._cache, store._timestamps
        child._query_ids, child._meta = store._query_ids, store._meta
        store.abandon_after_fork()
        return child

    def _persist(self, writes: Writes) -> None:
        # the in-memory dicts of LocalStore are the whole state; nothing else to write
        return None
