"""One client name, several processes (issue 13.1, 13.2), against the real server: each process
gets a slot of its own, and the writes a dead process left are sent by the next, with no step
by hand. The process models themselves (pools, gunicorn) are in test_slots_processes.py."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.session import ClientFactory, Script, client_factory, run_script, wait_until
from tests.support.slots import DRAINER, WRITER, server_ids
from triplit_sync import StorageLockedError, TriplitClient
from triplit_sync.client._slots import MAX_SLOTS
from triplit_sync.testing import TriplitTestServer


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    yield from client_factory()


def _kill(script: Script) -> None:
    os.kill(script.proc.pid, signal.SIGKILL)
    assert script.wait_exit(10) == -signal.SIGKILL


def test_two_processes_use_one_name_at_once(triplit: TriplitTestServer, clients: ClientFactory,
                                            tmp_path: Path) -> None:
    token = triplit.service_token()
    here = clients(triplit.url, token, storage="sqlite", data_dir=tmp_path, name="app")
    here.insert("todos", {"id": "here-0", "text": "here", "owner": "x", "completed": False, "created_at": "2025-01-01T00:00:00.000Z"})
    code, out, err = run_script(WRITER, triplit.url, token, str(tmp_path), "app", "5", "there", "sync")
    assert code == 0, err
    assert out[0] == f"WROTE {tmp_path / 'app' / 'slots' / '1'}" and out[1] == "SYNCED"
    here.wait_for_sync(10)
    assert here.folder == tmp_path / "app"
    assert server_ids(triplit) == {"here-0"} | {f"there-{i}" for i in range(5)}


def test_the_writes_of_killed_processes_are_sent_by_the_next(triplit: TriplitTestServer, tmp_path: Path) -> None:
    """Two processes write offline and are SIGKILLed; the next process of the name claims one of
    their slots and takes in the other's outbox: every write reaches the server."""
    token = triplit.service_token()
    first = Script(WRITER, triplit.url, token, str(tmp_path), "app", "20", "first", "offline")
    first.wait_line("WROTE")
    second = Script(WRITER, triplit.url, token, str(tmp_path), "app", "20", "second", "offline")
    assert second.wait_line("WROTE")[1] == f"WROTE {tmp_path / 'app' / 'slots' / '1'}"
    _kill(first)
    _kill(second)
    assert server_ids(triplit) == set()
    code, out, err = run_script(DRAINER, triplit.url, token, str(tmp_path), "app")
    assert code == 0, err
    assert out == [f"SENT {tmp_path / 'app'} 40"]  # slot 0, with slot 1's writes moved in
    assert server_ids(triplit) == {f"{p}-{i}" for p in ("first", "second") for i in range(20)}
    code, out, err = run_script(DRAINER, triplit.url, token, str(tmp_path), "app")
    assert code == 0, err
    assert out == [f"SENT {tmp_path / 'app'} 0"]  # moved, not copied: nothing is sent twice


def test_a_live_client_sends_what_a_dead_process_of_its_name_left(
        triplit: TriplitTestServer, clients: ClientFactory, tmp_path: Path) -> None:
    """No new process needs to come: a live client looks at free slots every few seconds."""
    token = triplit.service_token()
    here = clients(triplit.url, token, storage="sqlite", data_dir=tmp_path, name="app")
    assert here.wait_connected(10)
    worker = Script(WRITER, triplit.url, token, str(tmp_path), "app", "10", "dead", "offline")
    worker.wait_line("WROTE")
    _kill(worker)
    assert wait_until(lambda: len(server_ids(triplit, "dead")) == 10, 20), server_ids(triplit)
    here.wait_for_sync(10)  # the server may have them a moment before its ACK reaches the client
    assert here._store.pending_changes() == []


FORK = """
import json, os, signal, sys
from triplit_sync import TriplitClient
url, token, data_dir = sys.argv[1:4]
client = TriplitClient(url, token, data_dir=data_dir, name="app", auto_connect=False)
client.insert("todos", {"id": "parent-0", "text": "p", "owner": "x", "completed": False, "created_at": "2025-01-01T00:00:00.000Z"})
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    for i in range(10):
        client.insert("todos", {"id": f"child-{i}", "text": "c", "owner": "x", "completed": False, "created_at": "2025-01-01T00:00:00.000Z"})
    os.write(w, str(client.folder).encode())
    os.close(w)
    signal.pause()  # killed by the parent
os.close(w)
folder = os.read(r, 4096).decode()
os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
print("RESULT " + json.dumps({"child_folder": folder, "killed": os.WIFSIGNALED(status),
                              "parent_pending": len(client._store.pending_changes())}))
client.close()
"""


def test_a_forked_childs_writes_are_durable(triplit: TriplitTestServer, tmp_path: Path) -> None:
    """fork, write in the child, SIGKILL the child, open the name again: the child's writes are sent."""
    token = triplit.service_token()
    code, out, err = run_script(FORK, triplit.url, token, str(tmp_path))
    assert code == 0, err
    result = json.loads(out[0].split(" ", 1)[1])
    assert result == {"child_folder": str(tmp_path / "app" / "slots" / "1"), "killed": True, "parent_pending": 1}
    code, out, err = run_script(DRAINER, triplit.url, token, str(tmp_path), "app")
    assert code == 0, err
    assert out == [f"SENT {tmp_path / 'app'} 11"]
    assert server_ids(triplit) == {"parent-0"} | {f"child-{i}" for i in range(10)}


def test_a_second_client_of_a_name_in_one_process_says_to_close_the_first(
        triplit: TriplitTestServer, tmp_path: Path) -> None:
    """A notebook re-running the cell that builds the client."""
    first = TriplitClient(triplit.url, triplit.service_token(), data_dir=tmp_path, name="nb")
    try:
        with pytest.raises(StorageLockedError) as info:
            TriplitClient(triplit.url, triplit.service_token(), data_dir=tmp_path, name="nb")
        message = str(info.value)
        assert "already open in this process" in message and "close()" in message and "'nb'" in message
    finally:
        first.close()
    again = TriplitClient(triplit.url, triplit.service_token(), data_dir=tmp_path, name="nb")  # after close()
    assert again.folder == tmp_path / "nb"
    again.close()


def test_when_every_slot_is_taken_the_error_says_so(tmp_path: Path) -> None:
    from triplit_sync._util.filelock import FileLock

    locks = [FileLock(tmp_path / "app" / "lock")] + [
        FileLock(tmp_path / "app" / "slots" / str(n) / "lock") for n in range(1, MAX_SLOTS)]
    (tmp_path / "app").mkdir(mode=0o700)
    (tmp_path / "app" / "slots").mkdir(mode=0o700)
    for lock in locks[1:]:
        lock.path.parent.mkdir(mode=0o700)
    code = ("import sys\nfrom triplit_sync import TriplitClient, StorageLockedError\n"
            "try:\n    TriplitClient('http://127.0.0.1:9', data_dir=sys.argv[1], name='app')\n"
            "except StorageLockedError as e:\n    print('LOCKED', e)\n")
    for lock in locks:
        assert lock.acquire(timeout=0)
    try:
        rc, out, err = run_script(code, str(tmp_path))
    finally:
        for lock in locks:
            lock.release()
    assert rc == 0, err
    assert out[0].startswith(f"LOCKED all {MAX_SLOTS} slots") and "storage='memory'" in out[0]


def test_sigterm_keeps_every_write(triplit: TriplitTestServer, tmp_path: Path) -> None:
    """Python's default SIGTERM ends the process without atexit; every write already is in sqlite."""
    token = triplit.service_token()
    worker = Script(WRITER, triplit.url, token, str(tmp_path), "app", "15", "term", "offline")
    worker.wait_line("WROTE")
    os.kill(worker.proc.pid, signal.SIGTERM)
    assert worker.wait_exit(10) == -signal.SIGTERM
    code, out, err = run_script(DRAINER, triplit.url, token, str(tmp_path), "app")
    assert code == 0, err
    assert out == [f"SENT {tmp_path / 'app'} 15"]
    assert server_ids(triplit, "term") == {f"term-{i}" for i in range(15)}


def test_closing_a_memory_client_warns_with_the_number_of_writes_lost(
        triplit: TriplitTestServer, caplog: pytest.LogCaptureFixture) -> None:
    client = TriplitClient(triplit.url, triplit.service_token(), storage="memory", auto_connect=False)
    for i in range(3):
        client.insert("todos", {"id": f"m-{i}", "text": "m", "owner": "x", "completed": False,
                                "created_at": "2025-01-01T00:00:00.000Z"})
    with caplog.at_level(logging.WARNING, logger="triplit_sync"):
        client.close()
    lost = [r for r in caplog.records if r.levelno == logging.WARNING and "lost" in r.getMessage()]
    assert len(lost) == 1 and "3 writes" in lost[0].getMessage() and "storage='memory'" in lost[0].getMessage()


def test_a_synced_memory_client_closes_without_a_warning(
        triplit: TriplitTestServer, caplog: pytest.LogCaptureFixture) -> None:
    client = TriplitClient(triplit.url, triplit.service_token(), storage="memory")
    client.insert("todos", {"id": "s-0", "text": "m", "owner": "x", "completed": False,
                            "created_at": "2025-01-01T00:00:00.000Z"})
    client.wait_for_sync(10)
    with caplog.at_level(logging.INFO, logger="triplit_sync"):
        client.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records


EXIT = """
import logging, sys
from triplit_sync import TriplitClient
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
client = TriplitClient(sys.argv[1], sys.argv[2], storage="memory", auto_connect=False)
for i in range(2):
    client.insert("todos", {"id": f"x-{i}", "text": "m", "owner": "x", "completed": False,
                            "created_at": "2025-01-01T00:00:00.000Z"})
"""


def test_interpreter_exit_with_a_memory_client_warns_too(triplit: TriplitTestServer) -> None:
    code, _, err = run_script(EXIT, triplit.url, triplit.service_token())
    assert code == 0, err
    assert "WARNING closing a client with storage='memory': 2 writes" in err, err


def test_a_client_that_failed_to_start_leaves_the_name_free(triplit: TriplitTestServer, tmp_path: Path) -> None:
    """An expired token at construction, then the same call with a good one (a notebook cell)."""
    from triplit_sync import TokenExpiredError

    with pytest.raises(TokenExpiredError):
        TriplitClient(triplit.url, triplit.user_token("alice", expires_in=-30), data_dir=tmp_path, name="nb")
    client = TriplitClient(triplit.url, triplit.user_token("alice"), data_dir=tmp_path, name="nb")
    assert client.folder == tmp_path / "nb"
    client.close()
