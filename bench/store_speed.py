"""Quick timings of the local stores (not a test): python bench/store_speed.py [N ...]

Measures apply_server_changes of N new todo documents, re-opening an N-entity sqlite store,
scan(), and get()/scan() with a small outbox.
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triplit_sync.store import MemoryStore, SqliteStore  # noqa: E402


def todos(n: int, prefix: str = "t"):
    return {
        f"{prefix}{i:07d}": {
            "id": f"{prefix}{i:07d}",
            "text": f"todo number {i}",
            "completed": i % 3 == 0,
            "created_at": "2024-01-01T00:00:00.000Z",
            "owner": f"user{i % 17}",
            "tags": {"a": True, "b": i % 2 == 0},
        }
        for i in range(n)
    }


def ms(t0: float) -> str:
    return f"{(time.perf_counter() - t0) * 1000:8.1f} ms"


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 50_000]
    for n in sizes:
        for kind in ("memory", "sqlite"):
            with tempfile.TemporaryDirectory() as tmp:
                store = MemoryStore() if kind == "memory" else SqliteStore(tmp)
                docs = todos(n)
                t0 = time.perf_counter()
                store.apply_server_changes({"todos": {"sets": docs, "deletes": set()}}, [1, 0, "server"])
                print(f"{kind:6} n={n:6}: apply {n} new docs        {ms(t0)}")
                patch = {k: {"completed": True} for k in list(docs)[: n // 10]}
                t0 = time.perf_counter()
                store.apply_server_changes({"todos": {"sets": patch, "deletes": set()}}, [2, 0, "server"])
                print(f"{kind:6} n={n:6}: apply {len(patch)} partial updates {ms(t0)}")
                t0 = time.perf_counter()
                for _ in range(10):
                    rows = store.scan("todos")
                per_call = (time.perf_counter() - t0) * 100
                print(f"{kind:6} n={n:6}: scan (per call)            {per_call:8.2f} ms  ({len(rows)} docs)")
                sets = {"t0000001": {"text": "x"}, "new1": {"id": "new1"}}
                outbox = {"sets": sets, "deletes": {"t0000002"}}
                store.add_local_changes({"todos": outbox}, owner="alice")
                t0 = time.perf_counter()
                for _ in range(10):
                    rows = store.scan("todos")
                per_call = (time.perf_counter() - t0) * 100
                print(f"{kind:6} n={n:6}: scan with outbox (per call){per_call:8.2f} ms  ({len(rows)} docs)")
                t0 = time.perf_counter()
                for i in range(10000):
                    store.get("todos", "t0000005")
                per_call = (time.perf_counter() - t0) * 100
                print(f"{kind:6} n={n:6}: get with outbox (per call) {per_call:8.4f} µs")
                if kind == "sqlite":
                    store.close()
                    t0 = time.perf_counter()
                    store = SqliteStore(tmp)
                    print(f"{kind:6} n={n:6}: reopen                     {ms(t0)}")
                    store.close()
                    tracemalloc.start()
                    store = SqliteStore(tmp)
                    size, _peak = tracemalloc.get_traced_memory()
                    tracemalloc.stop()
                    print(f"{kind:6} n={n:6}: memory after reopen        {size / n:8.0f} bytes/doc")
                store.close()


if __name__ == "__main__":
    main()
