"""kill -9 of a durable client at random moments, half of the time with the server unreachable.

Each round starts a client process (tests/support/py_driver.py) on the same durable folder, lets it
write (random inserts, updates, deletes, transactions on its own entities; every call reported
before it starts and after it returned, through the process's stdout pipe) and kills it with
SIGKILL after a random delay, which lands anywhere from interpreter start-up to the middle of a
sync. In the offline half the relay in front of the server refuses every connection, so
everything written waits in the outbox. Then the folder is checked (the lock is free, the cache
passes ``PRAGMA integrity_check``, ``session.json`` parses, nothing was moved aside), a new
process reopens it, ``wait_for_sync`` pushes what is pending, and three things are compared:

- every write whose call returned is on the server (the one call that had begun but not
  returned may or may not be);
- no write was reported rejected (every write here is valid: a rejection is a spurious error);
- the client's local cache equals the server's ``POST /fetch`` for the same token.
"""

from __future__ import annotations

import json
import queue
import random
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from tests.support.client import DriverProcess, python_driver, server_rows
from tests.support.relay import Relay
from triplit_sync._util.filelock import FileLock
from triplit_sync.testing import TriplitTestServer

from .common import SCHEMA, Deadline, Result

QUERY = {"collectionName": "todos", "where": [["owner", "=", "alice"]]}
_FOLDER_FILES = {"lock", "cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm", "session.json"}

Model = Dict[str, Optional[str]]  # entity id -> text, None when deleted


def _apply(model: Model, ops: List[List[Any]]) -> None:
    for kind, eid, text in ops:
        if kind == "insert":
            model[eid] = text
        elif kind == "update":
            if model.get(eid) is not None:
                model[eid] = text
        else:
            model[eid] = None


def _check_folder(folder: Path) -> List[str]:
    """What is wrong with a killed client's folder: a held lock, an unopenable file, a file moved aside."""
    problems: List[str] = []
    lock = FileLock(folder / "lock")
    if not lock.acquire(timeout=0):
        problems.append("stale lock: the folder's lock is still held after the process died")
    else:
        lock.release()
    cache = folder / "cache.sqlite"
    if cache.exists():
        try:
            db = sqlite3.connect(str(cache), timeout=1)
            try:
                check = db.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                db.close()
            if check != "ok":
                problems.append(f"unopenable file: cache.sqlite integrity_check says {check!r}")
        except sqlite3.Error as e:
            problems.append(f"unopenable file: cache.sqlite: {e}")
    session = folder / "session.json"
    if session.exists():
        try:
            json.loads(session.read_text())
        except (OSError, ValueError) as e:
            problems.append(f"unopenable file: session.json: {e}")
    extra = sorted(p.name for p in folder.iterdir() if p.name not in _FOLDER_FILES and not p.name.startswith("."))
    if extra:
        problems.append(f"unexpected files in the folder (moved aside?): {extra}")
    return problems


def _close_pipes(driver: DriverProcess) -> None:
    for stream in (driver.proc.stdin, driver.proc.stdout, driver.proc.stderr):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass


def _kill(driver: DriverProcess) -> List[Dict[str, Any]]:
    if driver.proc.poll() is None:
        driver.proc.send_signal(signal.SIGKILL)
    driver.proc.wait(10)
    events = driver.drain_events(10)
    _close_pipes(driver)
    return events


def _send(driver: DriverProcess, cmd: str, **args: Any) -> None:
    """A request whose reply nobody waits for (the process is about to be killed)."""
    assert driver.proc.stdin is not None
    try:
        driver.proc.stdin.write(json.dumps({"id": 0, "cmd": cmd, **args}) + "\n")
        driver.proc.stdin.flush()
    except OSError:
        pass


def run(quick: bool = True, seed: int = 1, rounds: Optional[int] = None) -> Result:
    rounds = rounds or (6 if quick else 100)
    res = Result("kill -9 of a durable client", "quick" if quick else "full")
    deadline = Deadline(60 if quick else 900)
    rng = random.Random(seed)
    offline_rounds = set(rng.sample(range(rounds), rounds // 2))
    data_dir = tempfile.mkdtemp(prefix="faults-kill9-")
    model: Model = {}
    counts = {"rounds": 0, "offline rounds": 0, "kills while writing": 0, "writes returned": 0,
              "writes interrupted": 0,
              "writes lost": 0, "spurious write errors": 0, "local/server differences": 0,
              "unopenable files": 0, "stale locks": 0, "unexpected entities": 0}
    recover_s: List[float] = []
    started = time.monotonic()
    with TriplitTestServer(SCHEMA) as server, Relay(server.port) as relay:
        token = server.user_token("alice")
        opts = {"url": relay.url, "token": token, "storage": "sqlite", "data_dir": data_dir,
                "name": "kill9", "ping_interval": None, "schema": str(SCHEMA)}
        for k in range(rounds):
            if deadline.over:
                res.failures.append(f"out of time after {k} of {rounds} rounds")
                break
            offline = k in offline_rounds
            relay.refuse(offline)
            driver = python_driver(**opts)
            _send(driver, "writeLoop", prefix=f"r{k}_", owner="alice", seed=seed * 1000 + k,
                  count=rng.randint(10, 200), pause=0.01)
            first: List[Dict[str, Any]] = []
            if rng.random() < 0.2:  # during start-up: opening the folder, the cache, the session
                threading.Event().wait(rng.uniform(0.0, 0.8))
            else:  # during the writes: after the first one began
                try:
                    first.append(driver.events.get(timeout=15))
                except queue.Empty:
                    res.failures.append(f"round {k}: the writer never started; stderr: {''.join(driver.stderr[-5:])}")
                threading.Event().wait(rng.uniform(0.0, 1.0))
            events = first + _kill(driver)
            begun: Dict[int, List[List[Any]]] = {}
            for ev in events:
                if ev["event"] == "begin":
                    begun[ev["seq"]] = ev["ops"]
                elif ev["event"] == "done":
                    _apply(model, begun.pop(ev["seq"]))
                    counts["writes returned"] += 1
                elif ev["event"] == "error":
                    begun.pop(ev["seq"], None)
                    res.failures.append(f"round {k}: a write call raised: {ev['error']}")
                elif ev["event"] == "sync_error":
                    counts["spurious write errors"] += 1
                    res.failures.append(f"round {k}: write reported rejected: {ev['name']}: {ev['message'][:160]}")
            if not any(ev["event"] == "finished" for ev in events):
                counts["kills while writing"] += 1
            uncertain = [op for ops in begun.values() for op in ops]  # at most one call in flight
            counts["writes interrupted"] += len(begun)
            for p in _check_folder(Path(data_dir) / "kill9"):
                counts["stale locks" if p.startswith("stale") else "unopenable files"] += 1
                res.failures.append(f"round {k}: {p}")
            relay.refuse(False)
            t0 = time.monotonic()
            problems = _recover(server, token, opts, model, uncertain, counts, k)
            recover_s.append(time.monotonic() - t0)
            res.failures.extend(problems)
            counts["rounds"] += 1
            counts["offline rounds"] += offline
    shutil.rmtree(data_dir, ignore_errors=True)
    res.figures.update(counts)
    res.figures["entities at the end"] = sum(1 for v in model.values() if v is not None)
    res.figures["recovery (reopen + sync + compare)"] = \
        f"mean {sum(recover_s) / max(1, len(recover_s)):.2f} s" if recover_s else "n/a"
    for key in ("writes lost", "spurious write errors", "local/server differences", "unopenable files",
                "stale locks", "unexpected entities"):
        res.check(counts[key] == 0, f"{key}: {counts[key]} (want 0)")
    res.seconds = time.monotonic() - started
    # Keep the report readable: the first failures say what happened, the counts say how often.
    if len(res.failures) > 12:
        res.failures[12:] = [f"... and {len(res.failures) - 12} more"]
    return res


def _recover(server: TriplitTestServer, token: str, opts: Dict[str, Any], model: Model,
             uncertain: List[List[Any]], counts: Dict[str, int], k: int) -> List[str]:
    problems: List[str] = []
    driver = python_driver(**opts)
    try:
        synced = driver.call("waitSync", timeout=30)
        if synced is not True:
            problems.append(f"round {k}: wait_for_sync after reopening: {synced!r:.300}")
        driver.call("subscribe", query=QUERY, sub="all")
        if not driver.call("waitFulfilled", sub="all", timeout=20):
            problems.append(f"round {k}: the reopened client's query was never answered")
        local, remote = _converge(driver, server, token)
        diff = _diff(local, remote)
        if diff:
            counts["local/server differences"] += len(diff)
            problems.append(f"round {k}: local cache != server on {len(diff)} entities, e.g. {diff[:3]}")
        on_server = {r["id"]: r.get("text") for r in remote}
        touched = {eid for _, eid, _ in uncertain}
        after = dict(model)
        _apply(after, uncertain)
        for eid, want in model.items():
            got = on_server.get(eid)
            if got == want or (eid in touched and got == after.get(eid)):
                continue
            counts["writes lost"] += 1
            problems.append(f"round {k}: {eid}: returned write says {want!r}, server has {got!r}")
        for eid in set(on_server) - set(model) - touched:
            counts["unexpected entities"] += 1
            problems.append(f"round {k}: {eid} is on the server but no write made it")
        for eid in touched:  # the interrupted call: whichever way it went, it is settled now
            model[eid] = on_server.get(eid)
        driver.call("close")
    finally:
        driver.proc.wait(15) if driver.proc.poll() is None else None
        events = driver.drain_events(10) if driver.proc.poll() is not None else []
        if driver.proc.poll() is None:
            driver.proc.kill()
            driver.proc.wait(5)
        _close_pipes(driver)
    for ev in events:
        if ev["event"] == "sync_error":
            counts["spurious write errors"] += 1
            problems.append(f"round {k} (recovery): write reported rejected: {ev['name']}: {ev['message'][:160]}")
    return problems


def _converge(driver: DriverProcess, server: TriplitTestServer, token: str,
              timeout: float = 10.0) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Local rows and server rows, once equal or when ``timeout`` ran out (changes may still travel)."""
    end = time.monotonic() + timeout
    while True:
        remote = server_rows(server, QUERY, token)
        local = driver.call("fetch", query=QUERY, policy="local-only")
        if _diff(local, remote) == [] or time.monotonic() > end:
            return local, remote
        threading.Event().wait(0.2)  # nothing to wait on: the server's side is polled over HTTP


def _diff(local: List[Dict[str, Any]], remote: List[Dict[str, Any]]) -> List[str]:
    a = {r["id"]: r for r in local}
    b = {r["id"]: r for r in remote}
    out: List[str] = []
    for eid in sorted(set(a) | set(b)):
        if eid not in b:
            out.append(f"{eid}: only local")
        elif eid not in a:
            out.append(f"{eid}: only on server")
        elif a[eid] != b[eid]:
            out.append(f"{eid}: local {a[eid].get('text')!r} server {b[eid].get('text')!r}")
    return out


