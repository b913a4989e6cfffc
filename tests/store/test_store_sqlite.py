"""SqliteStore only: persistence, crash safety (SIGKILL), files and modes, corrupt and locked files."""

from __future__ import annotations

import copy
import json
import os
import random
import selectors
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.store import ch, dump, ts
from triplit_sync.errors import StorageLockedError, TriplitError
from triplit_sync.errors import StorageCorruptError
from triplit_sync.store import MemoryStore, SqliteStore

REPO = Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- persistence: sqlite must end up exactly where memory does, across reopens ---------------------

def test_random_operations_survive_reopen(tmp_path):
    rnd = random.Random(99)
    mem, sql = MemoryStore(), SqliteStore(tmp_path / "db")
    ids = [f"e{i}" for i in range(6)]

    def doc(eid, with_id):
        d = {"v": rnd.randint(0, 5), "n": {rnd.choice("ab"): rnd.choice([1, None, [2], {"z": 3}])}}
        return {"id": eid, **d} if with_id else d

    def changes():
        out = {}
        for coll in rnd.sample(["todos", "users"], rnd.randint(1, 2)):
            picked = rnd.sample(ids, rnd.randint(1, 4))
            out[coll] = {
                "sets": {e: doc(e, rnd.random() < 0.6) for e in picked if rnd.random() < 0.8},
                "deletes": {e for e in picked if rnd.random() < 0.3},
            }
        return out

    ops = [
        lambda s, a: s.apply_server_changes(a["changes"], a["ts"]),
        lambda s, a: s.add_local_changes(a["changes"], owner=a["owner"]),
        lambda s, a: s.next_batch(a["owner"]),
        lambda s, a: s.ack_inflight(a["ts"]),
        lambda s, a: s.reject_inflight(),
        lambda s, a: s.requeue_inflight(),
        lambda s, a: s.clear_pending(a["coll"], a["eid"], owner=a["owner"] if a["flag"] else None),
        lambda s, a: s.update_query_ids(a["q"], {a["qcoll"]: a["ids1"]}, {a["qcoll"]: a["ids2"]}),
        lambda s, a: s.drop_query(a["q"]),
        lambda s, a: s.set_meta(a["q"], a["ids1"]),
        lambda s, a: s.clear(),
    ]
    weights = [6, 8, 3, 2, 1, 1, 1, 3, 1, 1, 0.1]
    for step in range(600):
        coll = rnd.choice(["todos", "users"])
        args = {
            "changes": changes(), "ts": ts(step), "qcoll": coll, "owner": rnd.choice(["alice", "bob"]),
            "coll": coll if rnd.random() < 0.7 else None, "flag": rnd.random() < 0.5,
            "q": rnd.choice(["q1", "q2"]),
            "ids1": sorted(rnd.sample(ids, 2)), "ids2": sorted(rnd.sample(ids, 2)),
        }
        args["eid"] = rnd.choice(ids) if args["coll"] and rnd.random() < 0.5 else None
        op = rnd.choices(ops, weights)[0]
        assert op(mem, copy.deepcopy(args)) == op(sql, copy.deepcopy(args)), step
        if rnd.random() < 0.08:
            sql.close()
            sql = SqliteStore(tmp_path / "db")
        assert dump(sql) == dump(mem), step
        for key in ("q1", "q2"):
            assert sql.get_meta(key) == mem.get_meta(key)
    sql.close()


def test_entity_timestamps_and_many_collections_survive(tmp_path):
    with SqliteStore(tmp_path) as s:
        s.apply_server_changes({**ch("a.b", {"1": {"id": "1"}}), **ch("c", {"2": {"id": "2"}})}, ts(1))
        s.apply_server_changes(ch("c", {"2": {"x": "é ü \u2603 \U0001f600"}}), ts(2))
        before = dump(s)
    with SqliteStore(tmp_path) as s:
        assert dump(s) == before
        assert s.entity_timestamp("a.b", "1") == ts(1)
        assert s.entity_timestamp("c", "2") == ts(2)
        assert s.get("c", "2")["x"] == "é ü \u2603 \U0001f600"


def test_wal_mode(tmp_path):
    with SqliteStore(tmp_path) as s:
        s.set_meta("k", 1)
        assert (tmp_path / "cache.sqlite-wal").exists()
    conn = sqlite3.connect(tmp_path / "cache.sqlite")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


# --- crash safety --------------------------------------------------------------------------------

CHILD = r"""
import json, os, sys
from triplit_sync.store import SqliteStore

path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SqliteStore(path)
# a tiny page cache makes SQLite spill uncommitted pages into the WAL during a big transaction,
# so a kill mid-transaction really leaves half a batch on disk for recovery to discard
store._conn.execute("PRAGMA cache_size=20")
wal = str(store.path) + "-wal"

def say(**msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()

def block():
    say(event="blocked", wal=os.path.getsize(wal) if os.path.exists(wal) else 0)
    sys.stdin.readline()  # the parent never writes: it kills us while we wait here
    os._exit(3)

def docs(prefix, count):
    return {f"{prefix}{i}": {"id": f"{prefix}{i}", "text": "x" * 60, "i": i, "tags": {"a": True}}
            for i in range(count)}

rows = SqliteStore._entity_rows

def block_halfway(coll, batch, ts_text):
    # rows are produced inside the open transaction, while executemany runs
    for k, row in enumerate(rows(coll, batch, ts_text)):
        if k == len(batch) // 2:
            block()
        yield row

base = docs("a", 1000)
store.apply_server_changes({"todos": {"sets": base, "deletes": set()}}, [1, 0, "server"])
big = docs("b", n)
big.update({f"a{i}": {"text": "changed"} for i in range(0, 100)})
batch = {"todos": {"sets": big, "deletes": {f"a{i}" for i in range(100, 200)}}}
say(event="ready", wal=os.path.getsize(wal))

if mode == "apply-mid":
    SqliteStore._entity_rows = staticmethod(block_halfway)
    store.apply_server_changes(batch, [2, 0, "server"])
elif mode == "apply-done":
    store.apply_server_changes(batch, [2, 0, "server"])
    block()
elif mode == "apply-in-two-calls":  # a control: what a non-atomic writer would leave behind
    half = dict(list(big.items())[: n // 2])
    store.apply_server_changes({"todos": {"sets": half, "deletes": set()}}, [2, 0, "server"])
    SqliteStore._entity_rows = staticmethod(block_halfway)
    store.apply_server_changes(batch, [2, 0, "server"])
elif mode in ("ack-mid", "ack-done"):
    store.add_local_changes({"todos": {"sets": docs("b", n), "deletes": set()}}, owner="o")
    store.next_batch("o")
    say(event="inflight")
    if mode == "ack-mid":
        SqliteStore._entity_rows = staticmethod(block_halfway)
    store.ack_inflight([3, 0, "server"])
    block()
elif mode == "local-done":
    store.add_local_changes({"todos": {"sets": docs("b", n), "deletes": {"a1"}}}, owner="o")
    block()
os._exit(4)
"""


def run_child_and_kill(db: Path, mode: str, n: int) -> dict:
    """Run CHILD, wait until it blocks, SIGKILL it; return its last message."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), mode, str(n)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    messages = []
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not messages or messages[-1]["event"] != "blocked":
            if not sel.select(timeout=120):
                pytest.fail(f"child ({mode}) said nothing for 120 s; so far {messages}")
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"child ({mode}) exited early ({proc.wait(10)}): {proc.stderr.read()}")
            messages.append(json.loads(line))
        sel.close()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
    ready = [m for m in messages if m["event"] == "ready"]
    return {"ready_wal": ready[0]["wal"] if ready else None, "blocked_wal": messages[-1]["wal"]}


def batch_state(store: SqliteStore, n: int) -> str:
    """'none', 'all' or 'partial': how much of the child's big batch the reopened store holds."""
    ids = store.cached_ids("todos")
    new_ids = {f"b{i}" for i in range(n)}
    present = len(ids & new_ids)
    updated = sum(store.get_cached("todos", f"a{i}") is not None
                  and store.get_cached("todos", f"a{i}").get("text") == "changed" for i in range(100))
    deleted = sum(f"a{i}" not in ids for i in range(100, 200))
    if present == updated == deleted == 0:
        assert ids == {f"a{i}" for i in range(1000)}
        return "none"
    if present == n and updated == 100 and deleted == 100:
        return "all"
    return "partial"


crash = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
N = 30_000


@crash
def test_kill_in_the_middle_of_a_batch_leaves_none_of_it(tmp_path):
    info = run_child_and_kill(tmp_path / "cache.sqlite", "apply-mid", N)
    # half the batch had been written into the WAL, uncommitted, when the process died
    assert info["blocked_wal"] > info["ready_wal"] + 1_000_000
    with SqliteStore(tmp_path) as store:
        assert batch_state(store, N) in ("none", "all")
        assert batch_state(store, N) == "none"  # it was killed before COMMIT
        assert store.entity_timestamp("todos", "a5") == [1, 0, "server"]


@crash
def test_kill_after_a_batch_keeps_all_of_it(tmp_path):
    run_child_and_kill(tmp_path / "cache.sqlite", "apply-done", N)
    with SqliteStore(tmp_path) as store:
        assert batch_state(store, N) == "all"
        assert store.entity_timestamp("todos", f"b{N - 1}") == [2, 0, "server"]


@crash
def test_crash_check_detects_a_non_atomic_writer(tmp_path):
    # control for the two tests above: the same kill against a batch written in two transactions
    # is seen as partial, so the checks can fail
    run_child_and_kill(tmp_path / "cache.sqlite", "apply-in-two-calls", N)
    with SqliteStore(tmp_path) as store:
        assert batch_state(store, N) == "partial"


@crash
def test_kill_in_the_middle_of_an_ack(tmp_path):
    run_child_and_kill(tmp_path / "cache.sqlite", "ack-mid", 5_000)
    with SqliteStore(tmp_path) as store:
        inflight = store.inflight()
        assert inflight is not None and inflight[0] == "o"
        assert len(inflight[1]["todos"]["sets"]) == 5_000
        assert not store.cached_ids("todos") & {f"b{i}" for i in range(5_000)}
        assert store.get("todos", "b7") == {"id": "b7", "text": "x" * 60, "i": 7, "tags": {"a": True}}


@crash
def test_kill_after_an_ack(tmp_path):
    run_child_and_kill(tmp_path / "cache.sqlite", "ack-done", 5_000)
    with SqliteStore(tmp_path) as store:
        assert store.inflight() is None and not store.has_pending()
        assert {f"b{i}" for i in range(5_000)} <= store.cached_ids("todos")
        assert store.entity_timestamp("todos", "b7") == [3, 0, "server"]


@crash
def test_local_writes_are_durable_when_add_returns(tmp_path):
    run_child_and_kill(tmp_path / "cache.sqlite", "local-done", 2_000)
    with SqliteStore(tmp_path) as store:
        [entry] = store.pending_changes()
        assert entry.owner == "o" and not entry.inflight
        assert len(entry.changes["todos"]["sets"]) == 2_000
        assert entry.changes["todos"]["deletes"] == {"a1"}
        assert store.get("todos", "a1") is None


# --- files, folders, modes ------------------------------------------------------------------------

@posix_only
def test_new_folder_and_file_modes(tmp_path):
    folder = tmp_path / "data" / "client"
    with SqliteStore(folder) as store:
        store.set_meta("k", 1)
        assert store.path == folder / "cache.sqlite"
        assert mode(folder) == 0o700
        assert mode(store.path) == 0o600
        assert mode(Path(str(store.path) + "-wal")) == 0o600


@posix_only
def test_existing_folder_keeps_its_mode(tmp_path):
    os.chmod(tmp_path, 0o755)
    with SqliteStore(tmp_path):
        pass
    assert mode(tmp_path) == 0o755
    assert mode(tmp_path / "cache.sqlite") == 0o600


def test_file_path(tmp_path):
    target = tmp_path / "sub" / "mine.sqlite"
    with SqliteStore(target) as store:
        assert store.path == target
        store.set_meta("k", "v")
    with SqliteStore(str(target)) as store:
        assert store.get_meta("k") == "v"
    assert not (tmp_path / "sub" / "cache.sqlite").exists()


# --- corrupt, foreign and locked files ------------------------------------------------------------

def expect_corrupt(path: Path) -> StorageCorruptError:
    with pytest.raises(StorageCorruptError) as info:
        SqliteStore(path)
    assert info.value.path == str(path / "cache.sqlite")
    assert str(path / "cache.sqlite") in str(info.value)
    return info.value


def test_garbage_file(tmp_path):
    (tmp_path / "cache.sqlite").write_bytes(b"this is not a database at all, just text\n" * 100)
    expect_corrupt(tmp_path)


def test_truncated_file(tmp_path):
    with SqliteStore(tmp_path) as store:
        docs = {f"t{i}": {"id": f"t{i}", "x": "y" * 200} for i in range(2000)}
        store.apply_server_changes(ch("todos", docs), ts(1))
    data = (tmp_path / "cache.sqlite").read_bytes()
    (tmp_path / "cache.sqlite").write_bytes(data[: len(data) // 3])
    expect_corrupt(tmp_path)


def test_foreign_database(tmp_path):
    conn = sqlite3.connect(tmp_path / "cache.sqlite")
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    assert "not a triplit_sync cache" in str(expect_corrupt(tmp_path))


def test_newer_format(tmp_path):
    SqliteStore(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "cache.sqlite")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    assert "format 99" in str(expect_corrupt(tmp_path))


def test_malformed_rows(tmp_path):
    SqliteStore(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "cache.sqlite")
    conn.execute("INSERT INTO entities VALUES ('todos', 't1', X'7b6e6f7420', '[1,0,\"server\"]')")
    conn.commit()
    conn.close()
    assert "malformed rows" in str(expect_corrupt(tmp_path))


def test_a_folder_in_place_of_the_file(tmp_path):
    (tmp_path / "x.sqlite").mkdir()
    # a directory named like a file is taken as the folder
    with SqliteStore(tmp_path / "x.sqlite") as store:
        assert store.path == tmp_path / "x.sqlite" / "cache.sqlite"
    (tmp_path / "y" / "cache.sqlite").mkdir(parents=True)
    expect_corrupt(tmp_path / "y")


def test_second_store_on_the_same_file_is_refused(tmp_path):
    first = SqliteStore(tmp_path)
    with pytest.raises(StorageLockedError, match="cache.sqlite"):
        SqliteStore(tmp_path)
    first.set_meta("still", "works")
    first.close()
    with SqliteStore(tmp_path) as again:
        assert again.get_meta("still") == "works"


@crash
def test_store_held_by_another_process_is_refused(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = (
        "import sys; from triplit_sync.store import SqliteStore; s = SqliteStore(sys.argv[1]); "
        "print('open', flush=True); sys.stdin.readline()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        with pytest.raises(StorageLockedError):
            SqliteStore(tmp_path)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdin.close()
        proc.stdout.close()
    with SqliteStore(tmp_path) as store:  # the lock died with the process
        assert store.collections() == []
