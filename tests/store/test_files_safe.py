"""The client's files are safe (issue 12.4): no symlink is followed for the lock, the cache or
session.json; a folder another user controls is refused; a session file others can read is fixed.

No server is needed: every client here works offline (auto_connect=False). Tests that need a
file of another user chown one, which needs root; they are skipped otherwise.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from triplit_sync import StorageUnsafeError, TriplitClient, TriplitError
from triplit_sync.testing import mint_token

URL = "http://127.0.0.1:9"  # nothing listens there; nothing here connects
SECRET = "s" * 32
needs_root = pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0,
                                reason="making a file of another user needs root")
OTHER_UID = 4242


@pytest.fixture
def opened() -> Iterator[List[TriplitClient]]:
    made: List[TriplitClient] = []
    yield made
    for client in made:
        client.close()


def _client(opened: List[TriplitClient], data_dir: Path, token: Any = None) -> TriplitClient:
    client = TriplitClient(URL, token, data_dir=data_dir, name="app", auto_connect=False)
    opened.append(client)
    return client


def _stored_session(opened: List[TriplitClient], data_dir: Path, sub: str) -> Path:
    """A closed client's folder holding a session of ``sub``; returns the folder."""
    client = _client(opened, data_dir, mint_token(SECRET, sub=sub))
    folder = client.folder
    assert folder is not None
    client.close()
    return folder


def test_the_error_is_exported_under_triplit_error() -> None:
    assert issubclass(StorageUnsafeError, TriplitError)


def test_a_symlinked_session_file_never_lends_its_identity(opened: List[TriplitClient], tmp_path: Path) -> None:
    victim = _stored_session(opened, tmp_path / "victim", "mallory-target")
    folder = _stored_session(opened, tmp_path / "mine", "alice")
    (folder / "session.json").unlink()
    os.symlink(victim / "session.json", folder / "session.json")
    before = (victim / "session.json").read_bytes()
    with pytest.raises(StorageUnsafeError, match="session.json.*symbolic link") as info:
        _client(opened, tmp_path / "mine")
    assert info.value.path == str(folder / "session.json")
    assert (victim / "session.json").read_bytes() == before  # neither used nor changed


def test_a_symlinked_lock_does_not_truncate_its_target(opened: List[TriplitClient], tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    folder = tmp_path / "data" / "app"
    folder.mkdir(parents=True, mode=0o700)
    os.symlink(target, folder / "lock")
    with pytest.raises(StorageUnsafeError, match="lock.*symbolic link"):
        _client(opened, tmp_path / "data")
    assert target.read_text() == "keep me\n"


@pytest.mark.parametrize("name", ["cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm"])
def test_a_symlinked_cache_file_is_refused(opened: List[TriplitClient], tmp_path: Path, name: str) -> None:
    _stored_session(opened, tmp_path / "data", "alice")
    folder = tmp_path / "data" / "app"
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not yours")
    path = folder / name
    if path.exists():
        path.unlink()
    os.symlink(target, path)
    with pytest.raises(StorageUnsafeError, match=f"{name}.*symbolic link"):
        _client(opened, tmp_path / "data")
    assert target.read_bytes() == b"not yours"


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_folder_others_can_write_is_refused(opened: List[TriplitClient], tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "data" / "app"
    folder.mkdir(parents=True)
    os.chmod(folder, mode)
    with pytest.raises(StorageUnsafeError, match="writable by group or others.*chmod 700") as info:
        _client(opened, tmp_path / "data")
    assert info.value.path == str(folder)
    assert stat.S_IMODE(os.stat(folder).st_mode) == mode  # refused, not silently changed


def test_a_folder_others_can_read_is_closed_with_a_warning(
        opened: List[TriplitClient], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "data" / "app"
    folder.mkdir(parents=True)
    os.chmod(folder, 0o755)
    with caplog.at_level(logging.WARNING, logger="triplit_sync"):
        _client(opened, tmp_path / "data")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert any("readable by others" in r.getMessage() for r in caplog.records)


def test_a_new_folder_and_its_files_are_private(opened: List[TriplitClient], tmp_path: Path) -> None:
    client = _client(opened, tmp_path / "data", mint_token(SECRET, sub="alice"))
    folder = client.folder
    assert folder is not None
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    for name in ("session.json", "cache.sqlite", "lock"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) & 0o077 == 0, name


def test_a_session_file_others_can_read_is_fixed_with_a_warning(
        opened: List[TriplitClient], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _stored_session(opened, tmp_path / "data", "alice")
    os.chmod(folder / "session.json", 0o644)
    with caplog.at_level(logging.WARNING, logger="triplit_sync"):
        client = _client(opened, tmp_path / "data")
    assert stat.S_IMODE(os.stat(folder / "session.json").st_mode) == 0o600
    assert any("session.json had mode 644" in r.getMessage() for r in caplog.records)
    assert client.session is not None and client.session.claims["sub"] == "alice"  # still resumed


@needs_root
def test_a_folder_of_another_user_is_refused(opened: List[TriplitClient], tmp_path: Path) -> None:
    folder = tmp_path / "data" / "app"
    folder.mkdir(parents=True, mode=0o700)
    os.chown(folder, OTHER_UID, OTHER_UID)
    with pytest.raises(StorageUnsafeError, match=f"belongs to user id {OTHER_UID}"):
        _client(opened, tmp_path / "data")


@needs_root
def test_a_session_file_of_another_user_is_refused(opened: List[TriplitClient], tmp_path: Path) -> None:
    folder = _stored_session(opened, tmp_path / "data", "alice")
    os.chown(folder / "session.json", OTHER_UID, OTHER_UID)
    with pytest.raises(StorageUnsafeError, match=f"session.json.*belongs to user id {OTHER_UID}"):
        _client(opened, tmp_path / "data")


def test_a_symlinked_slot_lock_is_refused_too(opened: List[TriplitClient], tmp_path: Path) -> None:
    """Slot folders (a second process of the name) get the same checks as the first."""
    first = _client(opened, tmp_path / "data")
    assert first.folder == tmp_path / "data" / "app"
    slot = tmp_path / "data" / "app" / "slots" / "1"
    slot.mkdir(parents=True, mode=0o700)
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    os.symlink(target, slot / "lock")
    # The same process cannot open the name twice; another process would meet the link.
    code = (
        "import sys\n"
        "from triplit_sync import TriplitClient, StorageUnsafeError\n"
        "try:\n"
        "    TriplitClient(sys.argv[1], data_dir=sys.argv[2], name='app', auto_connect=False)\n"
        "except StorageUnsafeError as e:\n"
        "    print('UNSAFE', e.path)\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code, URL, str(tmp_path / "data")], capture_output=True,
                         text=True, timeout=30, cwd=str(Path(__file__).resolve().parents[2]))
    assert out.stdout.strip() == f"UNSAFE {slot / 'lock'}", out.stderr
    assert target.read_text() == "keep me\n"
