"""Many threads, one client: mixed calls, read-your-writes, no deadlock, no lost write.

``THREADS`` threads share one durable client connected to the real server; each makes
``CALLS`` random calls on its own entities: insert, update, delete, fetch, subscribe,
unsubscribe. Right after each insert the thread fetches (``local-first``) a query on its own
ids, which must show the entity with the value it wrote; every fetch of own ids must show each
live entity with the thread's latest value and none it deleted (a read-your-writes miss
otherwise). A watchdog fails the run if the threads are not done by the deadline, after
dumping every thread's stack with faulthandler (so a deadlock shows where it is). At the end
the server must hold exactly what the threads' last writes say.
"""

from __future__ import annotations

import faulthandler
import random
import shutil
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

from tests.support.client import server_rows
from triplit_sync import TriplitClient
from triplit_sync.errors import WriteError
from triplit_sync.testing import TriplitTestServer

from .common import SCHEMA, Result, ThreadErrors, percentiles


class Worker(threading.Thread):
    def __init__(self, client: TriplitClient, k: int, calls: int, seed: int) -> None:
        super().__init__(name=f"faults-worker-{k}", daemon=True)
        self.client, self.k, self.calls = client, k, calls
        self.rng = random.Random(seed)
        self.live: Dict[str, str] = {}  # own entity id -> latest text written
        self.deleted: List[str] = []
        self.misses: List[str] = []
        self.errors: List[str] = []
        self.counts: Dict[str, int] = {}
        self.fetch_s: List[float] = []
        self.subs: List[Any] = []
        self.done_calls = 0

    def _query(self, ids: List[str]) -> Dict[str, Any]:
        return {"collectionName": "todos", "where": [["id", "in", ids]]}

    def _check(self, ids: List[str]) -> None:
        t0 = time.monotonic()
        rows = self.client.fetch(self._query(ids), policy="local-first", timeout=30)
        self.fetch_s.append(time.monotonic() - t0)
        got = {r["id"]: r.get("text") for r in rows}
        for eid in ids:
            want = self.live.get(eid)
            if got.get(eid) != want:
                self.misses.append(f"{eid}: wrote {want!r}, fetch shows {got.get(eid)!r}")

    def run(self) -> None:
        rng, n = self.rng, 0
        ops = ["insert", "update", "delete", "fetch", "subscribe", "unsubscribe"]
        weights = [30, 25, 10, 20, 8, 7]
        for seq in range(self.calls):
            op = rng.choices(ops, weights)[0]
            if op in ("update", "delete") and not self.live:
                op = "insert"
            try:
                if op == "insert":
                    eid = f"w{self.k}_{n}"
                    n += 1
                    self.live[eid] = f"{self.k}-{seq}"
                    self.client.insert("todos", {"id": eid, "text": self.live[eid], "owner": "alice"})
                    self._check([eid] + rng.sample(sorted(self.live), min(2, len(self.live))))
                elif op == "update":
                    eid = rng.choice(sorted(self.live))
                    self.live[eid] = f"{self.k}-{seq}"
                    self.client.update("todos", eid, {"text": self.live[eid]})
                elif op == "delete":
                    eid = rng.choice(sorted(self.live))
                    del self.live[eid]
                    self.deleted.append(eid)
                    self.client.delete("todos", eid)
                elif op == "fetch":
                    pool = sorted(self.live) + self.deleted[-3:]
                    if pool:
                        self._check(rng.sample(pool, min(4, len(pool))))
                elif op == "subscribe":
                    pool = sorted(self.live) or [f"w{self.k}_none"]
                    self.subs.append(self.client.subscribe(self._query(rng.sample(pool, min(3, len(pool)))),
                                                           lambda rows: None))
                elif self.subs:
                    self.subs.pop(rng.randrange(len(self.subs))).unsubscribe()
            except Exception as e:  # any exception from a call is a failure of the run
                self.errors.append(f"{op}: {type(e).__name__}: {str(e)[:200]}")
            self.counts[op] = self.counts.get(op, 0) + 1
            self.done_calls += 1
        for s in self.subs:
            s.unsubscribe()


def run(quick: bool = True, seed: int = 1, *, threads: Optional[int] = None, calls: Optional[int] = None,
        watchdog_s: Optional[float] = None) -> Result:
    threads = threads or (8 if quick else 32)
    calls = calls or (150 if quick else 1000)
    watchdog_s = watchdog_s or (60 if quick else 900)
    res = Result(f"{threads} threads x {calls} mixed calls on one client", "quick" if quick else "full")
    started = time.monotonic()
    data_dir = tempfile.mkdtemp(prefix="faults-threads-")
    write_errors: List[WriteError] = []
    with ThreadErrors() as thread_errors, TriplitTestServer(SCHEMA) as server:
        token = server.user_token("alice")
        client = TriplitClient(server.url, token=token, schema=SCHEMA, data_dir=data_dir, name="threads")
        client.on_sync_error(write_errors.append)
        client.wait_connected(30)
        workers = [Worker(client, k, calls, seed * 100 + k) for k in range(threads)]
        for w in workers:
            w.start()
        end = time.monotonic() + watchdog_s
        for w in workers:
            w.join(max(0.0, end - time.monotonic()))
        stuck = [w for w in workers if w.is_alive()]
        if stuck:
            sys.stderr.write(f"\n--- watchdog: {len(stuck)} threads still running after {watchdog_s} s; stacks:\n")
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            res.failures.append(f"deadlock (or far too slow): {len(stuck)} of {threads} threads not done after "
                                f"{watchdog_s} s, at calls {[w.done_calls for w in stuck][:8]}; stacks on stderr")
        lost: List[str] = []
        if not stuck:
            try:
                client.wait_for_sync(60)
            except WriteError as e:
                write_errors.extend(e.failures)
            except Exception as e:
                res.failures.append(f"wait_for_sync: {type(e).__name__}: {e}")
            rows = server_rows(server, {"collectionName": "todos", "where": [["owner", "=", "alice"]]}, token)
            on_server = {r["id"]: r.get("text") for r in rows}
            expected: Dict[str, str] = {}
            for w in workers:
                expected.update(w.live)
            lost = [f"{i}: wrote {t!r}, server {on_server.get(i)!r}"
                    for i, t in expected.items() if on_server.get(i) != t]
            lost += [f"{i}: deleted, still on the server" for i in on_server if i not in expected]
        client.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    misses = [m for w in workers for m in w.misses]
    errors = [e for w in workers for e in w.errors]
    totals: Dict[str, int] = {}
    for w in workers:
        for op, c in w.counts.items():
            totals[op] = totals.get(op, 0) + c
    res.figures["calls"] = sum(totals.values())
    res.figures["by call"] = ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))
    res.figures["fetch (local-first of own ids)"] = percentiles([s for w in workers for s in w.fetch_s])
    res.figures["read-your-writes misses"] = len(misses)
    res.figures["lost writes"] = len(lost)
    res.figures["write errors reported"] = len(write_errors)
    res.figures["call exceptions"] = len(errors)
    res.figures["exceptions on background threads"] = len(thread_errors.errors)
    res.check(not misses, f"read-your-writes misses: {len(misses)}, e.g. {misses[:3]}")
    res.check(not lost, f"lost writes: {len(lost)}, e.g. {lost[:3]}")
    first = str(write_errors[0])[:200] if write_errors else ""
    res.check(not write_errors, f"write errors reported: {len(write_errors)}, e.g. {first}")
    res.check(not errors, f"call exceptions: {len(errors)}, e.g. {errors[:3]}")
    res.check(not thread_errors.errors, f"exceptions on background threads: {thread_errors.errors[:3]}")
    res.seconds = time.monotonic() - started
    return res
