"""``session.json`` in the client's folder: the server URL, the token (unless
``persist_token=False``), identity, roles and the per-query resume checkpoints. Written atomically
(temp file, fsync, rename); a corrupt file is moved aside."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from .._util.safefs import open_nofollow

__all__ = ["SESSION_FILE", "SessionStore"]

logger = logging.getLogger(__name__)

SESSION_FILE = "session.json"
_FORMAT_VERSION = 1


class SessionStore:
    """``session.json`` in the client's folder; ``None`` data means no stored session."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / SESSION_FILE
        self._lock = threading.Lock()

    def load(self) -> Optional[Dict[str, Any]]:
        """The stored session, or ``None``. An unreadable file is moved aside with a warning."""
        with self._lock:
            try:
                raw = self._read()
            except FileNotFoundError:
                return None
            except OSError as e:
                logger.warning("cannot read %s (%s); starting a fresh session", self.path, e)
                return None
            try:
                data = json.loads(raw)
                if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
                    raise ValueError("not a triplit_sync session file of a known version")
                if not isinstance(data.get("checkpoints", {}), dict):
                    raise ValueError("checkpoints is not an object")
            except ValueError as e:
                aside = self.path.with_name(f"{SESSION_FILE}.corrupt-{int(time.time())}")
                try:
                    os.replace(self.path, aside)
                except OSError:
                    aside = self.path
                logger.warning("%s is unreadable (%s); moved it to %s and starting a fresh session",
                            self.path, e, aside.name)
                return None
            return data

    def _read(self) -> bytes:
        """The file's bytes, never through a symlink (another user's session must not become
        ours: :class:`StorageUnsafeError`); a file others could read is made 0600, with a WARNING."""
        fd = open_nofollow(self.path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if mode & 0o077 and hasattr(os, "fchmod"):
                logger.warning("%s had mode %o (it holds a token); made it 0600", self.path, mode)
                os.fchmod(fd, 0o600)
            return f.read()

    def save(self, data: Mapping[str, Any]) -> None:
        """Replace the file atomically: a crash leaves the old file or the new one, never half."""
        body = dict(data)
        body["version"] = _FORMAT_VERSION
        text = json.dumps(body, separators=(",", ":"))
        with self._lock:
            tmp = self.path.with_name(f".{SESSION_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                os.unlink(tmp)  # left by a killed process with this pid; O_EXCL below needs it gone
            except FileNotFoundError:
                pass
            # O_EXCL and O_NOFOLLOW: never write through a link planted at the temp name.
            fd = open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise

    def delete(self) -> None:
        with self._lock:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
