"""File-system checks for the client's folder: no symlink followed, no folder another user controls.

A client folder holds a token (``session.json``) and the writes not yet sent, so whoever can
write the folder, or plant a symlink in it, can make the client act as another user or write
over another file. The checks here refuse that with :class:`StorageUnsafeError` naming the path.
Once the folder itself is owned by this user and closed to others (0700), nothing in it can
change between a check and the open that follows, which makes the lstat checks race-free.

On platforms without ``os.getuid`` (Windows) ownership and mode checks are skipped.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Optional

from ..errors import StorageUnsafeError

__all__ = ["check_file", "open_nofollow", "safe_folder"]

logger = logging.getLogger(__name__)

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_POSIX = hasattr(os, "getuid")


def _uid() -> Optional[int]:
    return os.getuid() if _POSIX else None


def safe_folder(path: Path) -> None:
    """Create ``path`` (mode 0700) or check it: owned by this user and not writable by others.

    A folder readable by others is closed to 0700 with a WARNING (it holds a token); a folder
    owned by another user, or writable by group or others, raises :class:`StorageUnsafeError`:
    this process cannot make it safe, as its owner could change it back at any time.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.stat(path)  # follows a symlinked folder: its target is what gets used
    if not stat.S_ISDIR(st.st_mode):
        raise StorageUnsafeError(f"the client folder {str(path)!r} is not a folder", path=str(path))
    if not _POSIX:  # pragma: no cover - Windows
        return
    uid = _uid()
    if st.st_uid != uid:
        raise StorageUnsafeError(
            f"the client folder {str(path)!r} belongs to user id {st.st_uid}, not to this user ({uid}); "
            "another user could read its token or change its writes. Use a data_dir of your own.",
            path=str(path))
    if st.st_mode & 0o022:
        raise StorageUnsafeError(
            f"the client folder {str(path)!r} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"make it private (chmod 700 {str(path)!r}) or use another data_dir.",
            path=str(path))
    if st.st_mode & 0o077:
        logger.warning("the client folder %s was readable by others (mode %o); made it private (0700)",
                    path, stat.S_IMODE(st.st_mode))
        os.chmod(path, 0o700)


def check_file(path: Path) -> bool:
    """Whether ``path`` exists; raises :class:`StorageUnsafeError` if it is a symlink, not a
    regular file, or owned by another user (sqlite and json would follow or trust it)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise StorageUnsafeError(
            f"{str(path)!r} is a symbolic link; the client never follows one for its own files. "
            "Remove the link (the client recreates the file).", path=str(path))
    if not stat.S_ISREG(st.st_mode):
        raise StorageUnsafeError(f"{str(path)!r} is not a regular file; remove it", path=str(path))
    if _POSIX and st.st_uid != _uid():
        raise StorageUnsafeError(
            f"{str(path)!r} belongs to user id {st.st_uid}, not to this user; remove it", path=str(path))
    return True


def open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open`` that refuses a symlink at ``path`` (O_NOFOLLOW) and anything but a regular
    file of this user, with :class:`StorageUnsafeError`. Returns the descriptor."""
    try:
        fd = os.open(path, flags | _NOFOLLOW, mode)
    except OSError as e:
        if os.path.islink(path):
            raise StorageUnsafeError(
                f"{str(path)!r} is a symbolic link; the client never follows one for its own files. "
                "Remove the link (the client recreates the file).", path=str(path)) from e
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StorageUnsafeError(f"{str(path)!r} is not a regular file; remove it", path=str(path))
        if _POSIX and st.st_uid != _uid():
            raise StorageUnsafeError(
                f"{str(path)!r} belongs to user id {st.st_uid}, not to this user; remove it", path=str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd
