"""Lifecycle for scripts and workers, each in a subprocess: exiting without close(), fork, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.support.session import Script, iter_lines, run_script, wait_until
from triplit_sync import TriplitClient
from triplit_sync.errors import TriplitConnectionError, TriplitTimeoutError
from triplit_sync.testing import TriplitTestServer
from triplit_sync.transport.websocket import ConnectionStatus

# Creates a connected client with everything running (subscription, refresh timer, a pending
# write, a session error callback) and simply returns.
RETURNS = """
import sys
from triplit_sync import TriplitClient
url, token, data_dir = sys.argv[1:4]
client = TriplitClient(url, token, data_dir=data_dir, name="app", refresh_handler=lambda: token,
                       refresh_interval=30, on_session_error=print)
assert client.wait_connected(10)
client.subscribe(client.query("todos"), lambda rows: None)
client.insert("todos", {"text": "on the way out", "completed": False, "owner": "x",
                        "created_at": "2025-01-01T00:00:00.000Z"})
print("RETURNING", flush=True)
"""


def test_a_script_that_returns_exits_within_two_seconds_without_close(
        triplit: TriplitTestServer, tmp_path: Path) -> None:
    script = Script(RETURNS, triplit.url, triplit.service_token(), str(tmp_path))
    returned_at, _ = script.wait_line("RETURNING")
    assert script.wait_exit(10) == 0, script.stderr
    assert script.exited_at is not None and script.exited_at - returned_at < 2.0, script.exited_at - returned_at
    assert "Traceback" not in script.stderr and "Exception" not in script.stderr, script.stderr


FORK = """
import json, os, sys
from triplit_sync import TriplitClient
def todo(tid):
    return {"id": tid, "text": tid, "completed": False, "owner": "x", "created_at": "2025-01-01T00:00:00.000Z"}
from triplit_sync._util.filelock import FileLock
url, token, data_dir = sys.argv[1:4]
client = TriplitClient(url, token, data_dir=data_dir, name="app")
assert client.wait_connected(10)
parent_id = client._transport.client_id
changes = []
client._transport.add_status_listener(lambda change: changes.append(change.status.value))
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    before = client._transport.status.value
    client.insert("todos", todo("from-child"))  # first use
    connected = client.wait_connected(10)
    client.wait_for_sync(10)
    report = {"before": before, "child_id": client._transport.client_id, "connected": connected}
    os.write(w, json.dumps(report).encode())
    os.close(w)
    sys.exit(0)  # a normal exit: the child's atexit hook closes its client
os.close(w)
data = b""
while True:
    chunk = os.read(r, 65536)
    if not chunk:
        break
    data += chunk
_, status = os.waitpid(pid, 0)
client.insert("todos", todo("from-parent"))
client.wait_for_sync(10)
print("RESULT " + json.dumps({
    "parent_id": parent_id, "now_id": client._transport.client_id, "changes": changes,
    "child": json.loads(data or b"null"), "child_status": status,
    "lock_free": FileLock(client.folder / "lock").acquire(timeout=0),
}))
client.close()
"""


def test_after_fork_the_child_uses_its_own_connection(triplit: TriplitTestServer, tmp_path: Path) -> None:
    code, out, err = run_script(FORK, triplit.url, triplit.service_token(), str(tmp_path))
    assert code == 0, err
    result = json.loads(next(iter_lines(out, "RESULT")))
    child = result["child"]
    assert result["child_status"] == 0 and child is not None, err
    assert child["before"] == "UNINITIALIZED"  # nothing connected until the child used the client
    assert child["connected"] and child["child_id"] not in (None, result["parent_id"])
    assert result["now_id"] == result["parent_id"] and result["changes"] == []  # parent socket untouched
    assert result["lock_free"] is False  # the child did not release the parent's lock
    status, rows = triplit.post("fetch", {"query": {"collectionName": "todos"}})
    assert status == 200 and sorted(r["id"] for r in rows) == ["from-child", "from-parent"]


# Each blocking wait, interrupted by SIGINT once the main thread is inside it.
INTERRUPT = """
import sys, threading, time, traceback
from triplit_sync import TriplitClient
url, token = sys.argv[1:3]
WAITS = {"fetch": "wait_fulfilled", "watch": "__next__", "wait_for_sync": "wait_for_sync"}
main = threading.main_thread().ident

def announce(step):
    def run():
        name = WAITS[step]
        while True:
            frame = sys._current_frames().get(main)
            names = []
            while frame is not None:
                names.append(frame.f_code.co_name)
                frame = frame.f_back
            if name in names:
                print("BLOCKED " + step, flush=True)
                return
            time.sleep(0.01)  # watching another thread's stack: nothing signals it
    threading.Thread(target=run, daemon=True).start()

client = TriplitClient(url, token, storage="memory", auto_connect=False)  # nothing answers at url
client._transport.backoff_initial = client._transport.backoff_max = 3.0
closed = threading.Event()
client._transport.add_status_listener(lambda change: change.status.value == "CLOSED" and closed.set())
client.connect()
assert closed.wait(30)  # between two attempts: still a session that wants the server
for step in ("fetch", "watch", "wait_for_sync"):
    announce(step)
    started = time.monotonic()
    try:
        if step == "fetch":
            client.fetch(client.query("todos"), "remote-first")
        elif step == "watch":
            with client.watch(client.query("todos")) as stream:
                for rows in stream:
                    pass
        else:
            client.insert("todos", {"text": "never acknowledged"})
            client.wait_for_sync()
        print("RETURNED " + step, flush=True)
    except KeyboardInterrupt:
        print("INTERRUPTED " + step, flush=True)
    except BaseException as e:
        print("RAISED %s %r" % (step, e), flush=True)
print("DONE", flush=True)
"""


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more: a server that never answers


def test_ctrl_c_interrupts_fetch_watch_and_wait_for_sync(triplit: TriplitTestServer) -> None:
    script = Script(INTERRUPT, _dead_url(), triplit.service_token())
    try:
        for step in ("fetch", "watch", "wait_for_sync"):
            script.wait_line("BLOCKED " + step)
            sent_at = time.monotonic()
            os.kill(script.proc.pid, signal.SIGINT)
            at, line = script.wait_line(f"INTERRUPTED {step}", timeout=5)
            assert at - sent_at < 1.0
        script.wait_line("DONE")
        assert script.wait_exit(10) == 0, script.stderr
    finally:
        script.kill()
    assert not [line for line in script.output() if line.startswith(("RAISED", "RETURNED"))], script.output()


def test_remote_first_waits_through_a_reconnect_backoff(triplit: TriplitTestServer) -> None:
    with TriplitClient(_dead_url(), triplit.service_token(), storage="memory", auto_connect=False) as client:
        client._transport.backoff_initial = client._transport.backoff_max = 5.0
        client.connect()
        assert wait_until(lambda: client._transport.status is ConnectionStatus.CLOSED)
        with pytest.raises(TriplitTimeoutError):  # it waited for the server, as it would while connecting
            client.fetch(client.query("todos"), "remote-first", timeout=0.3)
        client.disconnect()
        with pytest.raises(TriplitConnectionError):  # deliberately offline: nothing to wait for
            client.fetch(client.query("todos"), "remote-first", timeout=0.3)
