"""The folder of a durable client, ``<data dir>/<name>/``: its lock, ``cache.sqlite`` and ``session.json``.

One process owns a folder at a time (the lock); an unusable cache is moved aside, never reused
and never a crash. Which folder a process gets for a client name is ``_slots.py``'s job.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from .._util.filelock import FileLock
from .._util.safefs import safe_folder
from ..errors import StorageCorruptError
from ..session import SessionStore
from ..store import SqliteStore

__all__ = ["ClientFolder", "default_data_dir", "default_name", "open_locked", "try_lock"]

logger = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """Where durable clients keep their folders: the platform's user data dir for triplit_sync."""
    import platformdirs

    return Path(platformdirs.user_data_path("triplit_sync", appauthor=False))


def default_name(server_url: str) -> str:
    """A folder name derived from the server URL: ``127.0.0.1_6543`` for ``http://127.0.0.1:6543``."""
    parts = urlsplit(server_url)
    raw = f"{parts.hostname or 'server'}_{parts.port or ('443' if parts.scheme == 'https' else '80')}{parts.path}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_") or "default"


@dataclass
class ClientFolder:
    """An opened, locked client folder (one slot of a client name, see ``_slots.py``).
    ``cache_reset``: the cache was unusable and is new and empty, so resume checkpoints stored
    beside it describe data that is gone."""

    path: Path
    lock: FileLock
    store: SqliteStore
    session_store: SessionStore
    cache_reset: bool = False
    slot: int = 0


def try_lock(folder: Path) -> Optional[FileLock]:
    """Check ``folder`` (created 0700; see ``_safefs.safe_folder``) and take its lock without
    waiting; ``None`` if a live process holds it."""
    safe_folder(folder)
    lock = FileLock(folder / "lock")
    return lock if lock.acquire(timeout=0) else None


def open_locked(folder: Path, lock: FileLock, slot: int = 0) -> ClientFolder:
    """Open the cache and session file of ``folder``, whose ``lock`` the caller holds (released
    again if opening fails). An unusable cache is moved aside and replaced by an empty one."""
    reset = False
    try:
        try:
            store = SqliteStore(folder)
        except StorageCorruptError as e:
            _move_aside(Path(e.path) if e.path else folder / "cache.sqlite", e)
            reset = True
            store = SqliteStore(folder)
    except BaseException:
        lock.release()
        raise
    return ClientFolder(folder, lock, store, SessionStore(folder), reset, slot)


def _move_aside(path: Path, error: StorageCorruptError) -> None:
    """Rename an unusable cache file (and its WAL files) to ``*.corrupt-<time>``, kept for inspection."""
    stamp = int(time.time())
    moved = []
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if not os.path.lexists(source):
            continue
        target = path.with_name(f"{path.name}.corrupt-{stamp}{suffix}")
        try:
            os.replace(source, target)
        except OSError as e:
            raise StorageCorruptError(
                f"{error} (and moving it aside failed: {e}); remove it by hand", path=str(path)) from error
        moved.append(target.name)
    logger.warning("the local database was unusable (%s); moved it aside as %s and starting with an empty one",
                error, ", ".join(moved) or "nothing")
