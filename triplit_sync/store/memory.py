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

    def _persist(self, writes: Writes) -> None:
        # the in-memory dicts of LocalStore are the whole state; nothing else to write
        return None
