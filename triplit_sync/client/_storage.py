"""The client's local storage over its life: open (claim a slot), after a fork, close.

Mixed into :class:`~triplit_sync.client.TriplitClient`; the slot pool itself is ``_slots.py``,
one slot's folder ``_folder.py``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Set, Union

from .._util.filelock import FileLock
from .._util.types import StorageKind
from ..session.state import SessionStore
from ..store import LocalStore, MemoryStore
from ..sync.engine import UNOWNED
from ._folder import ClientFolder, default_data_dir
from ._slots import SlotDrainer, claim_slot, register_name, unregister_name

if TYPE_CHECKING:
    from ..session.state import Session
    from ..sync.engine import SyncEngine

__all__ = ["StorageMixin"]

logger = logging.getLogger(__name__)


class StorageMixin:
    """Where the client's cache, outbox and session live, and what happens to them on close and fork."""

    if TYPE_CHECKING:  # provided by TriplitClient
        name: str
        storage: StorageKind
        server_url: str
        _store: LocalStore
        _engine: SyncEngine
        _stored: Dict[str, Any]
        _session: Optional[Session]

        def _init_engine(self) -> None: ...
        def _save_session(self) -> None: ...

    folder: Optional[Path]
    _root: Optional[Path]
    _slot: Optional[ClientFolder]
    _name_lock: Optional[FileLock]
    _session_store: Optional[SessionStore]
    _drainer: Optional[SlotDrainer]
    _cache_reset: bool

    def _init_storage(self, data_dir: Optional[Union[str, "os.PathLike[str]"]]) -> LocalStore:
        self.folder, self._root, self._slot = None, None, None
        self._name_lock, self._session_store, self._drainer = None, None, None
        self._cache_reset = False
        if self.storage == "memory":
            return MemoryStore()
        self._root = Path(data_dir if data_dir is not None else default_data_dir()) / self.name
        return self._claim_slot()

    def _claim_slot(self) -> LocalStore:
        """Claim a free slot of this name (see ``_slots.py``), taking in writes left by dead processes."""
        root = self._root
        assert root is not None
        register_name(root, self)
        try:
            opened = claim_slot(root)
        except BaseException:
            unregister_name(root, self)
            raise
        self._slot = opened
        self.folder, self._name_lock, self._session_store = opened.path, opened.lock, opened.session_store
        self._cache_reset = opened.cache_reset  # the stored checkpoints describe the lost cache
        return opened.store

    def _start_drainer(self) -> None:
        if self._root is not None and self._slot is not None:
            self._drainer = SlotDrainer(self._root, self._slot, self._writes_moved_in)
            self._drainer.start()

    def _writes_moved_in(self, collections: Set[str]) -> None:
        """Writes of a dead process arrived in the outbox: show them and send them."""
        self._engine.local_changes_applied(collections)

    def _load_stored_session(self) -> Dict[str, Any]:
        """What ``session.json`` of the claimed slot holds for this server ({} if nothing usable).

        A slot used for the first time starts with slot 0's session (not its checkpoints, which
        describe slot 0's cache): a second process of an app resumes the same stored session.
        """
        store = self._session_store
        if store is None:
            return {}
        stored = store.load()
        slot = self._slot
        if stored is None and slot is not None and slot.slot != 0 and self._root is not None:
            stored = SessionStore(self._root).load()
            if stored is not None:
                stored["checkpoints"] = {}
        if stored is not None and stored.get("server_url") != self.server_url:
            logger.warning("%s belongs to another server; starting a fresh session", store.path)
            stored = None
        if stored is not None and self._cache_reset:
            stored["checkpoints"] = {}  # resuming from them would skip what the new cache lacks
        return stored or {}

    def _claim_after_fork(self) -> None:
        """Swap the in-memory copy for a slot of this child's own, before any write is taken."""
        self._store.close()
        self._store = self._claim_slot()
        session = self._session
        stored = self._load_stored_session()
        if session is None or stored.get("identity") != session.identity:
            stored = {}  # another identity's resume state is not ours
        self._stored = stored
        self._init_engine()
        if session is not None:
            if self._store.inflight_owner() not in (None, session.identity):
                self._store.requeue_inflight()  # as in _begin: never block this identity's writes
            self._store.adopt_pending(UNOWNED, session.identity)
            self._engine.set_owner(session.identity)
        self._save_session()
        self._start_drainer()

    def _detach_storage_after_fork(self) -> None:
        """In a forked child: let go of the parent's files without touching them (an in-memory
        copy of the cache serves until the child's first call claims a slot of its own)."""
        self._store = MemoryStore.detached_from(self._store)
        if self._name_lock is not None:
            self._name_lock.abandon_after_fork()
        self._name_lock, self._session_store, self._slot, self.folder = None, None, None, None
        self._drainer = None  # its timer thread did not survive the fork

    def _release_storage(self) -> None:
        """On close: stop looking at other slots, say what is kept or lost, release the files."""
        if self._drainer is not None:
            self._drainer.stop()
        pending = _count_writes(self._store)
        if pending and self.storage == "memory":
            logger.warning("closing a client with storage='memory': %d writes not acknowledged by the server "
                        "are lost", pending)
        elif pending and self.folder is not None:
            logger.info("%d writes not acknowledged yet stay in %s; the next client of name %r sends them",
                     pending, self.folder, self.name)
        self._store.close()
        if self._name_lock is not None:
            self._name_lock.release()
        if self._root is not None:
            unregister_name(self._root, self)


def _count_writes(store: LocalStore) -> int:
    """Entity writes in the outbox (pending and in flight); 0 for a closed store."""
    if store.closed:
        return 0
    total = 0
    for entry in store.pending_changes():
        for c in entry.changes.values():
            total += len(set(c.get("sets") or ()) | set(c.get("deletes") or ()))
    return total
