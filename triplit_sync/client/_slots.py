"""The slots of a client name: one folder per live process, and no write left behind by a dead one.

    <data dir>/<name>/             slot 0 (the folder of earlier versions: existing data keeps working)
    <data dir>/<name>/slots/<n>/   slots 1 .. MAX_SLOTS-1, created when first needed

Each slot has its own lock, ``cache.sqlite`` (cache and outbox) and ``session.json``. A process,
or a forked child on its first use of the client, claims the lowest slot whose lock is free,
so several processes of one app (gunicorn workers, Django's autoreloader, a multiprocessing
pool) each get one and none is locked out. The OS frees a lock when its process dies, even by
SIGKILL, so a free slot is one nobody uses: its outbox holds the writes its last owner made and
could not send. Whoever claims a slot, and every live client every ``DRAIN_INTERVAL`` seconds,
moves the outboxes of the free slots into its own (oldest first, with their owners and units),
so those writes are sent by the next live process of the name without any manual step.

A move commits in the receiving database before it deletes from the dead one: a crash between
the two sends those writes twice (the server treats a re-sent set as the same write), never zero.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from .._util.safefs import safe_folder
from .._util.timers import OneShot
from ..errors import StorageLockedError, StorageUnsafeError, TriplitError
from ..store.sqlite import DB_FILENAME, take_outbox
from ._folder import ClientFolder, open_locked, try_lock

__all__ = ["MAX_SLOTS", "SlotDrainer", "claim_slot", "drain_free_slots", "register_name", "unregister_name"]

logger = logging.getLogger(__name__)

MAX_SLOTS = 16
SLOTS_DIR = "slots"
#: How often a live client looks for writes left in free slots (cheap: one flock try per slot
#: and an open only of a slot whose files changed since the last look).
DRAIN_INTERVAL = 5.0

_open_names: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()
_names_lock = threading.Lock()


def register_name(root: Path, client: Any) -> None:
    """Note that ``client`` uses the name folder ``root`` in this process; raise
    :class:`StorageLockedError` if an open client here already does (a re-run notebook cell)."""
    key = os.path.realpath(root)
    with _names_lock:
        other = _open_names.get(key)
        if other is not None and other is not client and not getattr(other, "closed", True):
            raise StorageLockedError(
                f"a TriplitClient named {root.name!r} is already open in this process ({other!r}, "
                f"local database {str(root)!r}). Call close() on it before creating a new one, or "
                "use it instead; one client per name and process is enough for every thread.")
        _open_names[key] = client


def unregister_name(root: Path, client: Any) -> None:
    key = os.path.realpath(root)
    with _names_lock:
        if _open_names.get(key) is client:
            del _open_names[key]


def forget_names_after_fork() -> None:
    """In a forked child: the parent's clients hold no slot here (each claims one on first use)."""
    global _names_lock
    _names_lock = threading.Lock()  # the parent's may have been held by another thread at the fork
    _open_names.clear()


def slot_folder(root: Path, index: int) -> Path:
    return root if index == 0 else root / SLOTS_DIR / str(index)


def _existing_slots(root: Path) -> List[int]:
    found = [0]
    try:
        names = os.listdir(root / SLOTS_DIR)
    except OSError:
        return found
    for name in names:
        if name.isdigit() and 0 < int(name) < MAX_SLOTS and str(int(name)) == name:
            found.append(int(name))
    return sorted(found)


def claim_slot(root: Path, on_moved: Optional[Callable[[Set[str]], None]] = None) -> ClientFolder:
    """Lock and open the lowest free slot of the name folder ``root``, then take in the writes
    left in the other free slots. Raises :class:`StorageLockedError` when every slot is in use,
    :class:`StorageUnsafeError` for a folder or file that is not safe (see ``_safefs.py``)."""
    safe_folder(root)
    for index in range(MAX_SLOTS):
        if index == 1:
            safe_folder(root / SLOTS_DIR)
        lock = try_lock(slot_folder(root, index))
        if lock is None:
            continue
        opened = open_locked(slot_folder(root, index), lock, index)
        try:
            drain_free_slots(root, opened, on_moved)
        except BaseException:
            opened.store.close()
            lock.release()
            raise
        if index:
            logger.debug("using slot %d of %s (lower slots are in use by other processes)", index, root)
        return opened
    raise StorageLockedError(
        f"all {MAX_SLOTS} slots of the local database {str(root)!r} are in use by live processes "
        f"(lock files {str(root / 'lock')!r} and {str(root / SLOTS_DIR)!r}/<n>/lock). "
        "Use fewer processes per client name, another name=..., or storage='memory'.")


def drain_free_slots(root: Path, own: ClientFolder, on_moved: Optional[Callable[[Set[str]], None]] = None,
                     seen: Optional[Dict[int, Tuple[int, int]]] = None) -> int:
    """Move the outboxes of ``root``'s free slots into ``own``'s store; returns the writes moved.

    ``seen`` (slot -> file stamps) lets a repeated pass skip free slots unchanged since the
    last one, which it found empty. ``on_moved`` gets the collections that received writes.
    """
    moved = 0
    for index in _existing_slots(root):
        if index == own.slot:
            continue
        folder = slot_folder(root, index)
        stamp = _stamp(folder)
        if seen is not None and stamp is not None and seen.get(index) == stamp:
            continue
        try:
            lock = try_lock(folder)
        except (StorageUnsafeError, OSError) as e:
            logger.warning("not taking the writes left in %s: %s", folder, e)
            continue
        if lock is None:
            if seen is not None:
                seen.pop(index, None)
            continue  # a live process owns it
        try:
            collections: Set[str] = set()
            count = [0]

            def deliver(segments: List[Any]) -> None:
                count[0] = own.store.import_outbox(segments)
                for seg in segments:
                    collections.update(seg.changes)

            take_outbox(folder, deliver)
            if count[0]:
                moved += count[0]
                logger.info("took %d unsent writes left in %s by a process that ended; they will be sent",
                         count[0], folder)
                if on_moved is not None:
                    on_moved(collections)
            if seen is not None:
                after = _stamp(folder)
                if after is not None:
                    seen[index] = after
        finally:
            lock.release()
    return moved


def _stamp(folder: Path) -> Optional[Tuple[int, int]]:
    """The database's and its WAL's modification times: unchanged means nothing was written."""
    try:
        db = os.stat(folder / DB_FILENAME).st_mtime_ns
    except OSError:
        return None
    try:
        wal = os.stat(folder / (DB_FILENAME + "-wal")).st_mtime_ns
    except OSError:
        wal = 0
    return db, wal


class SlotDrainer:
    """Every ``interval`` seconds, take the writes left in free slots into ``own`` (daemon timer).

    Needed besides the pass at claim time: when a worker of a pool dies while the others live
    on, no new process may open the name for a long time.
    """

    def __init__(self, root: Path, own: ClientFolder, on_moved: Callable[[Set[str]], None],
                 interval: float = DRAIN_INTERVAL) -> None:
        self._root, self._own, self._on_moved, self._interval = root, own, on_moved, interval
        self._seen: Dict[int, Tuple[int, int]] = {}
        self._timer = OneShot("triplit-slots")
        self._stopped = False

    def start(self) -> None:
        if not self._stopped:
            self._timer.schedule(self._interval, self._run)

    def _run(self) -> None:
        try:
            drain_free_slots(self._root, self._own, self._on_moved, self._seen)
        except (TriplitError, OSError) as e:  # a closed store, a vanished folder: try again later
            if not self._stopped:
                logger.warning("looking for writes left in other slots of %s failed: %s", self._root, e)
        self.start()

    def stop(self) -> None:
        self._stopped = True
        self._timer.cancel()
