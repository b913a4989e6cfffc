"""The client's local database: server-confirmed cache, outbox, query result ids, metadata.

Two implementations of one :class:`LocalStore` interface: :class:`SqliteStore` (durable, the
default) and :class:`MemoryStore`.

>>> store = open_store("memory")
>>> store.set_meta("hello", "world"); store.get_meta("hello")
'world'
"""

from __future__ import annotations

import os
from typing import Optional, Union

from .._util.types import StorageKind
from ._changes import deep_merge
from ._segments import Segment, merge_entry, overlay
from .base import LocalStore, OutboxEntry
from .memory import MemoryStore
from .sqlite import DB_FILENAME, SqliteStore

__all__ = [
    "Segment",
    "merge_entry",
    "overlay",
    "LocalStore",
    "MemoryStore",
    "SqliteStore",
    "OutboxEntry",
    "open_store",
    "deep_merge",
    "DB_FILENAME",
]

STORAGE_KINDS = ("sqlite", "memory")


def open_store(
    kind: StorageKind = "sqlite", path: Optional[Union[str, "os.PathLike[str]"]] = None
) -> LocalStore:
    """Open a store by name: ``"sqlite"`` (needs ``path``, a folder or a .sqlite file) or ``"memory"``.

    >>> open_store("sqlite", "/tmp/myclient")  # doctest: +SKIP
    <SqliteStore entities=0 pending=0 inflight=False path='/tmp/myclient/cache.sqlite'>
    """
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        if path is None:
            raise ValueError("open_store('sqlite') needs a path (a folder or a .sqlite file)")
        return SqliteStore(path)
    raise ValueError(f"unknown storage kind {kind!r}; expected one of {STORAGE_KINDS}")
