"""Sessions that survive restarts, against the real server: session.json, resume in a new process,
the name lock, corrupt files, a SIGKILLed client, and memory storage."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from tests.support.session import (
    SAMPLE_SCHEMA,
    ClientFactory,
    Events,
    Script,
    client_factory,
    iter_lines,
    run_script,
    wait_until,
)
from triplit_sync.errors import StorageLockedError
from triplit_sync.testing import TriplitTestServer


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    yield from client_factory()


def _seed(server: TriplitTestServer, ids: List[str]) -> None:
    todos = [{"id": i, "text": f"todo {i}", "completed": False, "owner": "carol",
              "created_at": "2025-01-01T00:00:00.000Z"} for i in ids]
    status, _ = server.post("bulk-insert?noReturn=true", {"todos": todos})
    assert status == 200


def _subscribe_and_wait(client: Any, n: int) -> Any:
    got = Events()
    sub = client.subscribe(client.query("todos"), got.recorder("rows"))
    assert got.wait_for(lambda: any(len(v) == n for v in got.values("rows")), 10)
    return sub


# A new process: resumes whatever session.json holds (no token given), reports and exits.
RESUME = """
import json, sys
from triplit_sync import TriplitClient
from triplit_sync.testing import mint_token
url, data_dir, name, secret, mode = sys.argv[1:6]
handler = (lambda: mint_token(secret, {"fresh": True}, sub="alice", expires_in=600)) if mode == "handler" else None
token = mint_token(secret, sub="bob") if mode == "explicit" else None
client = TriplitClient(url, token, data_dir=data_dir, name=name, refresh_handler=handler)
connected = client.wait_connected(10)
info = client.session
print("RESULT " + json.dumps({
    "connected": connected, "status": client.connection_status.value,
    "sub": info.claims.get("sub") if info else None, "fresh": bool(info and info.claims.get("fresh")),
    "checkpoints": len(client._engine.checkpoints()),
}))
client.close()
"""


def test_session_json_is_private_atomic_and_holds_the_session(
        triplit: TriplitTestServer, clients: ClientFactory, tmp_path: Path) -> None:
    _seed(triplit, ["a1", "a2"])
    token = triplit.user_token("alice", expires_in=600)
    client = clients(triplit.url, token, schema=SAMPLE_SCHEMA, storage="sqlite", data_dir=tmp_path, name="app")
    folder = tmp_path / "app"
    assert client.folder == folder
    _subscribe_and_wait(client, 2)
    client._engine.flush_checkpoints()
    path = folder / "session.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data["server_url"] == triplit.url and data["token"] == token
    assert data["identity"] == client.session.identity  # type: ignore[union-attr]
    assert data["roles"] == {"user": {"userId": "alice"}}
    assert len(data["checkpoints"]) == 1 and data["version"] == 1
    assert sorted(p.name for p in folder.iterdir() if "session" in p.name) == ["session.json"]  # no temp file
    # Atomic: a save that fails half-way leaves the previous file whole.
    real_replace = os.replace

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    os.replace = failing_replace  # type: ignore[assignment]
    try:
        with pytest.raises(OSError):
            client.update_session_token(triplit.user_token("alice", expires_in=900))
    finally:
        os.replace = real_replace  # type: ignore[assignment]
    assert json.loads(path.read_text()) == data
    assert sorted(p.name for p in folder.iterdir() if "session" in p.name) == ["session.json"]


def test_persist_token_false_keeps_the_token_out_of_the_file(
        triplit: TriplitTestServer, clients: ClientFactory, tmp_path: Path) -> None:
    token = triplit.user_token("alice")
    client = clients(triplit.url, token, storage="sqlite", data_dir=tmp_path, name="app", persist_token=False)
    assert client.wait_connected(10)
    text = (tmp_path / "app" / "session.json").read_text()
    assert "token" not in json.loads(text) and token not in text
    client.close()
    code, out, err = run_script(RESUME, triplit.url, str(tmp_path), "app", triplit.secret, "none")
    assert code == 0, err
    assert json.loads(next(iter_lines(out, "RESULT")))["status"] == "UNINITIALIZED"  # nothing to resume


@pytest.mark.parametrize("mode", ["valid", "handler", "explicit", "expired"])
def test_a_new_process_resumes_the_stored_session(
        triplit: TriplitTestServer, clients: ClientFactory, tmp_path: Path, mode: str) -> None:
    _seed(triplit, ["r1"])
    expires_in = 600 if mode in ("valid", "explicit") else -30
    first = clients(triplit.url, triplit.user_token("alice"), storage="sqlite", data_dir=tmp_path, name="app")
    _subscribe_and_wait(first, 1)
    if expires_in < 0:  # a token that has expired by the time the next process starts
        first.start_session(triplit.user_token("alice", expires_in=-30), refresh_handler=lambda: None,
                            auto_connect=False)
    first.close()
    code, out, err = run_script(RESUME, triplit.url, str(tmp_path), "app", triplit.secret,
                                "handler" if mode == "handler" else mode)
    assert code == 0, err
    result = json.loads(next(iter_lines(out, "RESULT")))
    if mode == "valid":
        assert result == {"connected": True, "status": "OPEN", "sub": "alice", "fresh": False, "checkpoints": 1}
    elif mode == "handler":  # expired on disk, renewed by the handler before connecting
        assert result == {"connected": True, "status": "OPEN", "sub": "alice", "fresh": True, "checkpoints": 1}
    elif mode == "explicit":  # the given token wins; another identity does not inherit the checkpoints
        assert result == {"connected": True, "status": "OPEN", "sub": "bob", "fresh": False, "checkpoints": 0}
    else:  # expired and no handler: no session, the app must start one
        assert result["status"] == "UNINITIALIZED" and result["sub"] is None


SECOND = """
import sys
from triplit_sync import TriplitClient
client = TriplitClient(sys.argv[1], data_dir=sys.argv[2], name="app")
print("FOLDER " + str(client.folder))
client.close()
"""


def test_a_name_is_shared_by_processes_not_by_clients_of_one_process(
        triplit: TriplitTestServer, clients: ClientFactory, tmp_path: Path) -> None:
    clients(triplit.url, triplit.user_token("alice"), storage="sqlite", data_dir=tmp_path, name="app")
    code, out, err = run_script(SECOND, triplit.url, str(tmp_path))
    assert code == 0, err
    assert next(iter_lines(out, "FOLDER")) == str(tmp_path / "app" / "slots" / "1")  # its own slot
    with pytest.raises(StorageLockedError, match=r"already open in this process.*close\(\)"):
        clients(triplit.url, storage="sqlite", data_dir=tmp_path, name="app")
    other = clients(triplit.url, storage="sqlite", data_dir=tmp_path, name="other")
    assert other.folder == tmp_path / "other"


def test_a_corrupt_session_file_is_moved_aside(
        triplit: TriplitTestServer, clients: ClientFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client = clients(triplit.url, triplit.user_token("alice"), storage="sqlite", data_dir=tmp_path, name="app")
    client.insert("todos", {"text": "kept", "owner": "alice", "completed": False})
    client.close()
    (tmp_path / "app" / "session.json").write_text('{"version": 1, "token": ')
    with caplog.at_level(logging.WARNING, logger="triplit_sync"):
        again = clients(triplit.url, storage="sqlite", data_dir=tmp_path, name="app")
    assert again.session is None  # a fresh session
    assert [p.name.startswith("session.json.corrupt-") for p in (tmp_path / "app").iterdir()].count(True) == 1
    assert "moved it to" in caplog.text
    assert len(again.pending_changes()) == 1  # the local database is untouched


def test_a_corrupt_cache_is_moved_aside_and_the_client_starts_fresh(
        triplit: TriplitTestServer, clients: ClientFactory, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    _seed(triplit, ["c1", "c2", "c3"])
    first = clients(triplit.url, triplit.user_token("alice"), storage="sqlite", data_dir=tmp_path, name="app")
    _subscribe_and_wait(first, 3)
    first.close()
    cache = tmp_path / "app" / "cache.sqlite"
    cache.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="triplit_sync"):
        again = clients(triplit.url, storage="sqlite", data_dir=tmp_path, name="app")
    assert "moved it aside" in caplog.text and str(cache) in caplog.text
    aside = [p for p in (tmp_path / "app").iterdir() if p.name.startswith("cache.sqlite.corrupt-")]
    assert aside and any(p.read_bytes().startswith(b"this is not") for p in aside)
    assert again.session is not None and again.session.claims["sub"] == "alice"  # session.json was fine
    # The stored checkpoints described the lost cache: the query is loaded in full again.
    assert again._engine.checkpoints() == {}
    _subscribe_and_wait(again, 3)


# A client that subscribes, reports what it received, and runs until it is killed.
SYNCING = """
import json, sys, threading
from triplit_sync import TriplitClient
url, data_dir, token = sys.argv[1:4]
client = TriplitClient(url, token, data_dir=data_dir, name="app")
def on_rows(rows):
    print("ROWS %d" % len(rows), flush=True)
client.subscribe(client.query("todos"), on_rows)
threading.Event().wait()
"""

# The next process: no token; counts what the first ENTITY_DATA of the resumed query holds.
RESUMED = """
import json, sys, threading
from triplit_sync import TriplitClient

url, data_dir = sys.argv[1:3]
client = TriplitClient(url, data_dir=data_dir, name="app")
transport, first = client._transport, threading.Event()
seen = {}
original = transport._on_message
def spy(msg):
    original(msg)
    if msg.TYPE == "ENTITY_DATA" and not first.is_set():
        seen["ids"] = sorted(msg.changes.get("todos", {}).get("sets", {}))
        seen["bytes"] = transport.bytes_received
        first.set()
transport._on_message = spy
rows = []
client.subscribe(client.query("todos"), lambda r: rows.append(len(r)))
assert first.wait(10)
client._dispatcher.flush(5)
info = client.session
print("RESULT " + json.dumps({"sub": info and info.claims.get("sub"), "ids": seen["ids"], "bytes": seen["bytes"],
                               "rows": rows[-1] if rows else None}))
client.close()
"""


def test_a_killed_client_resumes_and_gets_only_what_it_missed(
        triplit: TriplitTestServer, tmp_path: Path) -> None:
    old = [f"old{i:03d}" for i in range(200)]
    _seed(triplit, old)
    token = triplit.service_token()
    syncing = Script(SYNCING, triplit.url, str(tmp_path), token)
    try:
        syncing.wait_line("ROWS 200")
        _seed(triplit, ["live1"])  # arrives while the client syncs: moves its checkpoint
        live_at = time.time()
        syncing.wait_line("ROWS 201")

        def checkpoint_saved() -> bool:
            stamps = [c["timestamp"][0] for c in
                      json.loads((tmp_path / "app" / "session.json").read_text())["checkpoints"].values()]
            return bool(stamps) and stamps[0] >= int(live_at * 1000) - 1000

        assert wait_until(checkpoint_saved, timeout=5), "the checkpoint after live1 was not saved"
    finally:
        os.kill(syncing.proc.pid, signal.SIGKILL)
        syncing.wait_exit(10)
    assert syncing.proc.returncode == -signal.SIGKILL
    _seed(triplit, ["missed1", "missed2"])
    code, out, err = run_script(RESUMED, triplit.url, str(tmp_path))
    assert code == 0, err
    result = json.loads(next(iter_lines(out, "RESULT")))
    assert result["sub"] is None and result["rows"] == 203  # a service token: resumed without being given one
    assert {"missed1", "missed2"} <= set(result["ids"])
    assert not set(result["ids"]) & set(old), "the server re-sent what the killed client already had"
    # A fresh client would receive all 203: the resumed one got a small fraction of those bytes.
    fresh = clients_fresh_bytes(triplit)
    assert result["bytes"] < fresh / 10, (result["bytes"], fresh)


def clients_fresh_bytes(server: TriplitTestServer) -> int:
    from triplit_sync.client import TriplitClient

    with TriplitClient(server.url, server.service_token(), storage="memory") as client:
        done = threading.Event()
        client.subscribe(client.query("todos"), lambda rows: len(rows) == 203 and done.set())
        assert done.wait(10)
        return client._transport.bytes_received


def test_memory_storage_keeps_sessions_the_same_way_and_persists_nothing(
        triplit: TriplitTestServer, clients: ClientFactory, tmp_path: Path) -> None:
    client = clients(triplit.url, triplit.user_token("alice"), storage="memory", data_dir=tmp_path, name="mem",
                     schema=SAMPLE_SCHEMA)
    assert client.wait_connected(10) and client.folder is None
    with pytest.raises(Exception):
        client.update_session_token(triplit.user_token("bob"))
    client.insert("todos", {"text": "x", "owner": "alice", "completed": False})
    client.wait_for_sync(10)
    client.end_session()
    assert client.session is None
    client.close()
    assert list(tmp_path.iterdir()) == []
    again = clients(triplit.url, storage="memory", data_dir=tmp_path, name="mem")
    assert again.session is None and again.fetch(again.query("todos"), "local-only") == []
