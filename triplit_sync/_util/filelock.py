"""An advisory inter-process file lock (flock on POSIX, msvcrt on Windows).

The OS releases the lock when its process dies, even by SIGKILL, so a crashed process never
leaves a stale lock behind. The lock file is opened without following a symlink and is only
truncated once locked, so a planted link can never make it overwrite another file.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import IO, Any, Optional, Union

from .safefs import open_nofollow

try:  # POSIX
    import fcntl

    def _try_lock(f: IO[Any]) -> bool:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(f: IO[Any]) -> None:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(f: IO[Any]) -> bool:
        try:
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False

    def _unlock(f: IO[Any]) -> None:
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]


class FileLock:
    """Exclusive lock on ``path``; ``acquire(timeout=0)`` tries once, ``None`` waits forever."""

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        self.path = Path(path)
        self._file: Optional[IO[Any]] = None
        self._guard = threading.Lock()

    @property
    def locked(self) -> bool:
        return self._file is not None

    def acquire(self, timeout: Optional[float] = None, poll: float = 0.05) -> bool:
        with self._guard:
            if self._file is not None:
                return True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = os.fdopen(open_nofollow(self.path, os.O_RDWR | os.O_CREAT), "r+")
            deadline = None if timeout is None else time.monotonic() + timeout
            while not _try_lock(f):
                if deadline is not None and time.monotonic() >= deadline:
                    f.close()
                    return False
                # flock has no timed wait; another process holds the lock, so polling is the only way.
                time.sleep(poll)
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            self._file = f
            return True

    def release(self) -> None:
        with self._guard:
            f, self._file = self._file, None
            if f is not None:
                try:
                    _unlock(f)
                finally:
                    f.close()

    def abandon_after_fork(self) -> None:
        """In a forked child: close this process's copy of the descriptor without unlocking.

        flock belongs to the open file, which parent and child share: unlocking here would free
        the parent's lock, while closing only the child's copy leaves it held by the parent.
        """
        # No _guard here: a thread of the parent may have held it at the fork, forever in the child.
        f, self._file = self._file, None
        if f is not None:
            f.close()

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
