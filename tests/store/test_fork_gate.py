"""A fork while another thread is inside SQLite: the child must still open its own database.

SQLite's process-wide mutexes are copied locked into a child forked while a thread ran an SQLite
call; without ``_forkgate`` about 1 fork in 40 hung below (a forked pool worker hung so in the
suite). No server needed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from triplit_sync._util import forkgate as _forkgate
from triplit_sync.store import SqliteStore

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

FORKS = 300
CHILD_DEADLINE = 20.0  # a healthy child opens and closes a store in milliseconds


def _wait_child(pid: int, deadline: float) -> bool:
    """True when the child exited 0 before ``deadline``; a hung child is killed."""
    end = time.monotonic() + deadline
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        time.sleep(0.005)  # polling a child's exit: waitpid has no timeout


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork of a threaded process
def test_a_child_forked_during_sqlite_writes_opens_its_own_database(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "busy")
    stop = threading.Event()
    writes = [0]

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            docs = {f"e{j}": {"id": f"e{j}", "v": "x" * 50, "i": i} for j in range(100)}
            store.apply_server_changes({"c": {"sets": docs, "deletes": set()}}, [i, 0, "server"])
            writes[0] = i

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    failed = []
    try:
        for n in range(FORKS):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    SqliteStore(tmp_path / f"child{n}").close()
                    code = 0
                finally:
                    os._exit(code)
            if not _wait_child(pid, CHILD_DEADLINE):
                failed.append(n)
    finally:
        stop.set()
        thread.join(10)
        store.close()
    assert writes[0] > 0
    assert failed == [], f"{len(failed)} of {FORKS} children hung or failed opening a database"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_fork_waits_for_a_thread_inside_sqlite(tmp_path: Path) -> None:
    inside, leave, forked = threading.Event(), threading.Event(), threading.Event()
    pids = []

    def in_sqlite() -> None:
        with _forkgate.section():
            inside.set()
            leave.wait(30)

    def fork() -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os._exit(0)
        pids.append(pid)
        forked.set()

    a = threading.Thread(target=in_sqlite)
    a.start()
    assert inside.wait(10)
    b = threading.Thread(target=fork)
    b.start()
    try:
        assert not forked.wait(0.3), "forked while a thread was inside SQLite"
    finally:
        leave.set()
    assert forked.wait(10)
    a.join(10)
    b.join(10)
    assert _wait_child(pids[0], CHILD_DEADLINE)
    with _forkgate.section():  # and the gate is open again
        pass
