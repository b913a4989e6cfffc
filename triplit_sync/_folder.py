"""The folder of a durable client, ``<data dir>/<name>/``: its lock, ``cache.sqlite`` and ``session.json``.

One process owns a folder at a time (the lock); an unusable cache is moved aside, never reused
and never a crash.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Union
from urllib.parse import urlsplit

from ._filelock import FileLock
from .errors import StorageCorruptError, StorageLockedError
from .session import SessionStore
from .store import SqliteStore

__all__ = ["ClientFolder", "default_data_dir", "default_name", "open_folder"]

log = logging.getLogger(__name__)


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
    """An opened, locked client folder. ``cache_reset``: the cache was unusable and is new and
    empty, so resume checkpoints stored beside it describe data that is gone."""

    path: Path
    lock: FileLock
    store: SqliteStore
    session_store: SessionStore
    cache_reset: bool = False


def open_folder(data_dir: Union[str, "os.PathLike[str]"], name: str) -> ClientFolder:
    """Create (mode 0700), lock and open ``data_dir/name``. Raises :class:`StorageLockedError`
    naming the lock and the way out when another process owns it."""
    folder = Path(data_dir) / name
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    lock = FileLock(folder / "lock")
    if not lock.acquire(timeout=0):
        raise StorageLockedError(
            f"another process is using the local database {str(folder)!r} (lock file {str(lock.path)!r}). "
            "Give this client another name=..., or use storage='memory'."
        )
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
    return ClientFolder(folder, lock, store, SessionStore(folder), reset)


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
    log.warning("the local database was unusable (%s); moved it aside as %s and starting with an empty one",
                error, ", ".join(moved) or "nothing")
