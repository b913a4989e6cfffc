"""Where one client's cache, outbox and session file live, over the client's life: a slot of its
name claimed on open (or in a forked child, on first use), and released on close.

The slot pool itself is ``_slots.py``, one slot's folder ``_folder.py``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Set, Union

from .._util.filelock import FileLock
from .._util.types import StorageKind
from ..session import SessionStore
from ..store import LocalStore, MemoryStore
from ._folder import ClientFolder, default_data_dir
from ._slots import SlotDrainer, claim_slot, register_name, unregister_name

__all__ = ["ClientStorage"]

logger = logging.getLogger(__name__)


class ClientStorage:
    """The local database of one client: ``store`` (memory, or a slot's sqlite), the slot's
    ``session_file`` and ``folder``, and the drainer that takes in writes left by dead processes.

    ``owner`` is the client, named in the message a second client of the same name in this
    process gets; ``on_writes_moved_in(collections)`` is called when such writes arrived.
    """

    def __init__(self, owner: Any, name: str, kind: StorageKind, server_url: str,
                 data_dir: Optional[Union[str, "os.PathLike[str]"]],
                 on_writes_moved_in: Callable[[Set[str]], None]) -> None:
        self._owner, self.name, self.kind, self._server_url = owner, name, kind, server_url
        self._on_writes_moved_in = on_writes_moved_in
        self.folder: Optional[Path] = None
        self.session_file: Optional[SessionStore] = None
        self._root: Optional[Path] = None
        self._slot: Optional[ClientFolder] = None
        self._name_lock: Optional[FileLock] = None
        self._drainer: Optional[SlotDrainer] = None
        self._cache_reset = False
        if kind == "memory":
            self.store: LocalStore = MemoryStore()
        else:
            self._root = Path(data_dir if data_dir is not None else default_data_dir()) / name
            self.store = self._claim_slot()

    def _claim_slot(self) -> LocalStore:
        """Claim a free slot of this name (see ``_slots.py``), taking in writes left by dead processes."""
        root = self._root
        assert root is not None
        register_name(root, self._owner)
        try:
            opened = claim_slot(root)
        except BaseException:
            unregister_name(root, self._owner)
            raise
        self._slot = opened
        self.folder, self._name_lock, self.session_file = opened.path, opened.lock, opened.session_store
        self._cache_reset = opened.cache_reset  # the stored checkpoints describe the lost cache
        return opened.store

    def start_drainer(self) -> None:
        if self._root is not None and self._slot is not None:
            self._drainer = SlotDrainer(self._root, self._slot, self._on_writes_moved_in)
            self._drainer.start()

    def load_stored_session(self) -> Dict[str, Any]:
        """What ``session.json`` of the claimed slot holds for this server ({} if nothing usable).

        A slot used for the first time starts with slot 0's session (not its checkpoints, which
        describe slot 0's cache): a second process of an app resumes the same stored session.
        """
        file = self.session_file
        if file is None:
            return {}
        stored = file.load()
        slot = self._slot
        if stored is None and slot is not None and slot.slot != 0 and self._root is not None:
            stored = SessionStore(self._root).load()
            if stored is not None:
                stored["checkpoints"] = {}
        if stored is not None and stored.get("server_url") != self._server_url:
            logger.warning("%s belongs to another server; starting a fresh session", file.path)
            stored = None
        if stored is not None and self._cache_reset:
            stored["checkpoints"] = {}  # resuming from them would skip what the new cache lacks
        return stored or {}

    # ------------------------------------------------------------------ fork

    def detach_after_fork(self) -> None:
        """In a forked child: let go of the parent's files without touching them (an in-memory
        copy of the cache serves until the child's first call claims a slot of its own)."""
        self.store = MemoryStore.detached_from(self.store)
        if self._name_lock is not None:
            self._name_lock.abandon_after_fork()
        self._name_lock, self.session_file, self._slot, self.folder = None, None, None, None
        self._drainer = None  # its timer thread did not survive the fork

    def claim_after_fork(self) -> None:
        """Swap the in-memory copy for a slot of this child's own, before any write is taken
        (sqlite storage only: the core keeps a memory client's copy)."""
        self.store.close()
        self.store = self._claim_slot()

    # ------------------------------------------------------------------ close

    def release(self) -> None:
        """On close: stop looking at other slots, say what is kept or lost, release the files."""
        if self._drainer is not None:
            self._drainer.stop()
        pending = _count_writes(self.store)
        if pending and self.kind == "memory":
            logger.warning("closing a client with storage='memory': %d writes not acknowledged by the server "
                           "are lost", pending)
        elif pending and self.folder is not None:
            logger.info("%d writes not acknowledged yet stay in %s; the next client of name %r sends them",
                        pending, self.folder, self.name)
        self.store.close()
        if self._name_lock is not None:
            self._name_lock.release()
        if self._root is not None:
            unregister_name(self._root, self._owner)


def _count_writes(store: LocalStore) -> int:
    """Entity writes in the outbox (pending and in flight); 0 for a closed store."""
    if store.closed:
        return 0
    total = 0
    for entry in store.pending_changes():
        for c in entry.changes.values():
            total += len(set(c.get("sets") or ()) | set(c.get("deletes") or ()))
    return total
