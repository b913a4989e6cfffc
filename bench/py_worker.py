"""One benchmark scenario with triplit_sync, in a fresh Python process (the mirror of js/worker.mjs).

The job (JSON) comes on stdin; the last stdout line is ``BENCH_RESULT {...}``. Times are
``time.perf_counter()`` milliseconds; callbacks run on the client's dispatcher thread and record
their own time there.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any, Callable, Dict, List, Optional

from triplit_sync import TriplitClient

from bench._worker import main, now, rss


class Waiter:
    """The first moment a condition held in a callback, for the main thread to wait on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.t: Optional[float] = None
        self.value: Any = None
        self.error: Optional[BaseException] = None

    def set(self, value: Any = None) -> None:
        if not self.event.is_set():
            self.t = now()
            self.value = value
            self.event.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.event.set()

    def wait(self, timeout: float, what: str) -> float:
        if not self.event.wait(timeout):
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        if self.error is not None:
            raise RuntimeError(f"failed waiting for {what}") from self.error
        assert self.t is not None
        return self.t


def make_client(job: Dict[str, Any], durable: bool = False) -> TriplitClient:
    if durable:
        data_dir, name, storage = job["data_dir"], job["name"], "sqlite"
    else:
        data_dir = tempfile.mkdtemp(prefix="py-", dir=job.get("scratch"))
        name, storage = f"bench-{os.getpid()}", "memory"
    client = TriplitClient(job["url"], token=job["token"], schema=job["schema_path"], storage=storage,
                           name=name, data_dir=data_dir, auto_connect=True)
    if not client.wait_connected(30):
        raise TimeoutError("the client did not connect within 30 s")
    return client


def timeout_s(job: Dict[str, Any]) -> float:
    return float(job.get("timeout_ms", 300_000)) / 1000


def new_todo(job: Dict[str, Any], i: int) -> Dict[str, Any]:
    # Ids made here (not by the client) so that the harness can tell the clients' rows apart.
    return {"id": f"{job['id_prefix']}{i:06d}", "text": f"bench write {i} #7", "owner": job["user_id"]}


def subscribe_until(client: TriplitClient, query: Any, done: Callable[[List[Dict[str, Any]]], bool],
                    job: Dict[str, Any], what: str) -> "tuple[float, List[Dict[str, Any]]]":
    waiter = Waiter()

    def on_results(rows: List[Dict[str, Any]]) -> None:
        if not waiter.event.is_set() and done(rows):
            waiter.set(rows)

    client.subscribe(query, on_results, on_error=waiter.fail)
    t = waiter.wait(timeout_s(job), what)
    return t, waiter.value


def transport_bytes(client: TriplitClient) -> Dict[str, int]:
    transport = client._transport
    return {"bytes_received": int(transport.bytes_received), "bytes_sent": int(transport.bytes_sent)}


# --------------------------------------------------------------------------- scenarios


def p1(job: Dict[str, Any]) -> Dict[str, Any]:
    """P1 (and P6): subscribe to all todos; time to the first callback with all N rows."""
    n = job["n"]
    rss0 = rss()
    client = make_client(job)
    rss_connected = rss()
    t0 = now()
    t, rows = subscribe_until(client, client.query("todos"), lambda r: len(r) >= n, job, "all rows")
    rss1 = rss()
    result = {"load_ms": (t - t0) * 1000, "rows": len(rows), "rss_before": rss0,
              "rss_connected": rss_connected,
              "rss_after": rss1, "rss_growth": rss1 - rss0, **transport_bytes(client)}
    client.close()
    return result


def p2(job: Dict[str, Any]) -> Dict[str, Any]:
    """P2: a subscriber on a live query; another client inserts one at a time, each waiting for its ack."""
    count = job["count"]
    sub = make_client(job)
    writer = make_client(job)
    started: Dict[str, float] = {}
    seen: Dict[str, float] = {}
    all_seen = Waiter()
    fulfilled = Waiter()

    def on_results(rows: List[Dict[str, Any]]) -> None:
        t = now()
        for row in rows:
            rid = row["id"]
            if rid in started and rid not in seen:
                seen[rid] = t
                if len(seen) == count:
                    all_seen.set()

    query = sub.query("todos").where("completed", "=", False).order("created_at", "DESC").limit(50)
    sub.subscribe(query, on_results, on_error=fulfilled.fail, on_remote_fulfilled=lambda *a: fulfilled.set())
    fulfilled.wait(60, "the subscriber's first server results")
    ack_ms = []
    for i in range(count):
        todo = new_todo(job, i)
        t0 = now()
        started[todo["id"]] = t0
        writer.insert("todos", todo)
        writer.wait_for_sync(30)  # raises on timeout or a rejected write
        ack_ms.append((now() - t0) * 1000)
    all_seen.wait(30, "all inserts seen by the subscriber")
    latency = [(seen[i] - started[i]) * 1000 for i in started]
    writer.close()
    sub.close()
    return {"latency_ms": latency, "ack_ms": ack_ms}


def p3a(job: Dict[str, Any]) -> Dict[str, Any]:
    """P3a: sequential inserts, each waiting for its ack."""
    client = make_client(job)
    ms = []
    for i in range(job["count"]):
        todo = new_todo(job, i)
        t0 = now()
        client.insert("todos", todo)
        client.wait_for_sync(30)
        ms.append((now() - t0) * 1000)
    client.close()
    return {"ack_ms": ms}


def p3b(job: Dict[str, Any]) -> Dict[str, Any]:
    """P3b: inserts as fast as possible, then wait until all are acknowledged."""
    count = job["count"]
    client = make_client(job)
    t0 = now()
    for i in range(count):
        client.insert("todos", new_todo(job, i))
    t_local = now()
    client.wait_for_sync(timeout_s(job))
    t1 = now()
    client.close()
    return {"total_ms": (t1 - t0) * 1000, "local_ms": (t_local - t0) * 1000,
            "inserts_per_s": count / (t1 - t0)}


def p4_load(job: Dict[str, Any]) -> Dict[str, Any]:
    """P4 phase A: a durable client syncs all todos, then exits (its data dir stays)."""
    n = job["n"]
    client = make_client(job, durable=True)
    t0 = now()
    t, rows = subscribe_until(client, client.query("todos"), lambda r: len(r) >= n, job, "all rows")
    result = {"load_ms": (t - t0) * 1000, "rows": len(rows), **transport_bytes(client)}
    client.close()
    return result


def p4_resume(job: Dict[str, Any]) -> Dict[str, Any]:
    """P4 phase B: a new process on the same data resubscribes; time until all changes are visible."""
    updated: Dict[str, str] = job["expect"]["updated"]
    deleted: List[str] = job["expect"]["deleted"]
    inserted: List[str] = job["expect"]["inserted"]
    wanted = len(updated) + len(deleted) + len(inserted)
    first: List[int] = []

    def done(rows: List[Dict[str, Any]]) -> bool:
        if not first:
            first.append(len(rows))
        by_id = {row["id"]: row for row in rows}
        ok = sum(1 for i, text in updated.items() if i in by_id and by_id[i].get("text") == text)
        ok += sum(1 for i in deleted if i not in by_id)
        ok += sum(1 for i in inserted if i in by_id)
        return ok == wanted

    client = make_client(job, durable=True)
    t0 = now()
    t, rows = subscribe_until(client, client.query("todos"), done, job, "all changes")
    result = {"resume_ms": (t - t0) * 1000, "rows": len(rows),
              "first_callback_rows": first[0] if first else None,
              **transport_bytes(client)}
    client.close()
    return result


def p5(job: Dict[str, Any]) -> Dict[str, Any]:
    """P5: a local-only query over the synced cache, `runs` times."""
    client = make_client(job)
    fulfilled = Waiter()
    client.subscribe(client.query("todos"), lambda rows: None, on_error=fulfilled.fail,
                     on_remote_fulfilled=lambda *a: fulfilled.set())
    fulfilled.wait(120, "all todos synced")
    cached = len(client.fetch(client.query("todos"), policy="local-only"))
    query = (client.query("todos").where("completed", "=", False).where("text", "like", "%7%")
             .order("created_at", "DESC").limit(20))
    ms = []
    ids = None
    for _ in range(job["runs"]):
        t0 = now()
        rows = client.fetch(query, policy="local-only")
        ms.append((now() - t0) * 1000)
        if ids is None:
            ids = [row["id"] for row in rows]
    client.close()
    return {"query_ms": ms, "cached": cached, "result_ids": ids}


if __name__ == "__main__":
    from bench import py_scale

    main("py", {"P1": p1, "P2": p2, "P3a": p3a, "P3b": p3b, "P4_load": p4_load, "P4_resume": p4_resume,
                "P5": p5, "S1": py_scale.s1, "S2_load": py_scale.s2_load, "S2_reopen": py_scale.s2_reopen,
                "S4": py_scale.s4, "S5_sub": py_scale.s5_sub, "S5_write": py_scale.s5_write})
