"""The scale scenarios (issue 18) with triplit_sync: S1 local queries, S2/S3 reopen and memory,
S4 many live queries. Run through ``python -m bench.py_worker`` like the P scenarios; the JS
mirror is in js/worker.mjs."""

from __future__ import annotations

import gc
from typing import Any, Dict, List

from triplit_sync import TriplitClient

from bench._worker import now, rss
from bench.py_worker import Waiter, make_client, subscribe_until, timeout_s


def s1_queries(client: TriplitClient) -> Dict[str, Any]:
    """S1's two local queries: one an order index answers, one that must read every row."""
    return {
        "indexed": client.query("todos").where("completed", "=", False).order("created_at", "DESC").limit(20),
        "scan": client.query("todos").where("text", "like", "%777%"),  # every row read
    }


def s1(job: Dict[str, Any]) -> Dict[str, Any]:
    """S1: N todos synced (one live query on all of them, as in P5); both local queries `runs`
    times each. The first run of the indexed query (it builds the index) is reported apart."""
    client = make_client(job)
    fulfilled = Waiter()
    client.subscribe(client.query("todos"), lambda rows: None, on_error=fulfilled.fail,
                     on_remote_fulfilled=lambda *a: fulfilled.set())
    fulfilled.wait(timeout_s(job), "all todos synced")
    queries = s1_queries(client)
    result: Dict[str, Any] = {"cached": len(client.fetch(client.query("todos"), policy="local-only"))}
    for name, query in queries.items():
        ms: List[float] = []
        ids = None
        for i in range(job["runs"] + 1):
            t0 = now()
            rows = client.fetch(query, policy="local-only")
            t = (now() - t0) * 1000
            if i == 0:
                result[f"{name}_first_ms"] = t
                ids = [row["id"] for row in rows]
            else:
                ms.append(t)
        result[f"{name}_ms"] = ms
        result[f"{name}_ids"] = ids
    client.close()
    return result


def s2_load(job: Dict[str, Any]) -> Dict[str, Any]:
    """S2 phase A: a durable client syncs all N todos, then exits."""
    client = make_client(job, durable=True)
    t0 = now()
    t, rows = subscribe_until(client, client.query("todos"), lambda r: len(r) >= job["n"], job, "all rows")
    result = {"load_ms": (t - t0) * 1000, "rows": len(rows)}
    del rows
    client.close()
    return result


def s2_reopen(job: Dict[str, Any]) -> Dict[str, Any]:
    """S2 (and S3): a new process opens the durable client (no connection) and answers S1's
    indexed query locally. RSS growth is measured after that query, per cached entity."""
    gc.collect()
    rss0 = rss()
    t0 = now()
    client = TriplitClient(job["url"], token=job["token"], schema=job["schema_path"], storage="sqlite",
                           name=job["name"], data_dir=job["data_dir"], auto_connect=False)
    t1 = now()
    rows = client.fetch(s1_queries(client)["indexed"], policy="local-only")
    t2 = now()
    rss1 = rss()
    cached = len(client._store.cached_ids("todos"))
    result = {"reopen_ms": (t2 - t0) * 1000, "open_ms": (t1 - t0) * 1000, "first_query_ms": (t2 - t1) * 1000,
              "rows": len(rows), "cached": cached, "rss_growth": rss1 - rss0,
              "bytes_per_entity": (rss1 - rss0) / max(cached, 1), "result_ids": [r["id"] for r in rows]}
    client.close()
    return result


def s4(job: Dict[str, Any]) -> Dict[str, Any]:
    """S4: `queries` live queries (`text = "s4 query <i>"`) over N cached todos; `count` inserts,
    each matching one query; insert call -> that query's callback showing the row. The first
    writes run with one live query, the rest with all of them."""
    count, nq = job["count"], job["queries"]
    client = make_client(job)
    client.fetch(client.query("todos"), policy="remote-first", timeout=timeout_s(job))  # N cached
    seen: Dict[str, float] = {}
    waiters: Dict[str, Waiter] = {}

    def subscribe(i: int) -> None:
        tag = f"s4 query {i}"
        fulfilled = Waiter()

        def on_results(rows: List[Dict[str, Any]]) -> None:
            t = now()
            for row in rows:
                w = waiters.get(row["id"])
                if w is not None and row["id"] not in seen:
                    seen[row["id"]] = t
                    w.set()

        client.subscribe(client.query("todos").where("text", "=", tag), on_results,
                         on_error=fulfilled.fail, on_remote_fulfilled=lambda *a: fulfilled.set())
        fulfilled.wait(60, f"live query {i} fulfilled")

    def writes(prefix: str, k: int, targets: int) -> List[float]:
        out = []
        for j in range(k):
            todo = {"id": f"{job['id_prefix']}{prefix}{j:05d}", "text": f"s4 query {(j * 7) % targets}",
                    "owner": job["user_id"]}
            w = waiters[todo["id"]] = Waiter()
            t0 = now()
            client.insert("todos", todo)
            w.wait(30, "the write's callback")
            out.append((seen[todo["id"]] - t0) * 1000)
            client.wait_for_sync(30)
        return out

    subscribe(0)
    one = writes("a", count // 4, 1)
    for i in range(1, nq):
        subscribe(i)
    many = writes("b", count, nq)
    client.close()
    return {"latency_ms": many, "latency_one_ms": one}


def s5_sub(job: Dict[str, Any]) -> Dict[str, Any]:
    """S5, one of the subscriber processes: P2's live query; prints S5_READY once the server has
    answered it, then records the wall-clock time each of the writer's rows first shows."""
    import sys
    import time

    prefix, count = job["watch_prefix"], job["count"]
    client = make_client(job)
    seen: Dict[str, float] = {}
    done, fulfilled = Waiter(), Waiter()

    def on_results(rows: List[Dict[str, Any]]) -> None:
        t = time.time()
        for row in rows:
            rid = row["id"]
            if rid.startswith(prefix) and rid not in seen:
                seen[rid] = t
                if len(seen) >= count:
                    done.set()

    query = client.query("todos").where("completed", "=", False).order("created_at", "DESC").limit(50)
    client.subscribe(query, on_results, on_error=fulfilled.fail, on_remote_fulfilled=lambda *a: fulfilled.set())
    fulfilled.wait(60, "the subscriber's first server results")
    sys.stdout.write("S5_READY\n")
    sys.stdout.flush()
    done.wait(timeout_s(job), "every write seen")
    client.close()
    return {"seen": seen}


def s5_write(job: Dict[str, Any]) -> Dict[str, Any]:
    """S5, the writer: `count` inserts one at a time, each waiting for its ack; wall-clock times."""
    import time

    client = make_client(job)
    started: Dict[str, float] = {}
    for i in range(job["count"]):
        todo = {"id": f"{job['watch_prefix']}{i:05d}", "text": f"fan-out {i}", "owner": job["user_id"]}
        started[todo["id"]] = time.time()
        client.insert("todos", todo)
        client.wait_for_sync(30)
    client.close()
    return {"started": started}
