"""CPU time of the client's local work, without a server: a 50 000-entity frame applied to the
store with a live subscription and delivered, then 200 local queries (P5's). Prints JSON.

Run it alternately against two checkouts to compare them where the full benchmark is too noisy:

    PYTHONPATH=../old python bench/micro_local.py 50000
    PYTHONPATH=.      python bench/micro_local.py 50000

It reaches into the client's private parts (``_store``, ``_engine``) that every version so far
has, so that it runs on old checkouts too.
"""
import json, sys, time, threading
try:
    from triplit_sync.wire.messages import EntityData
except ImportError:
    from triplit_sync.protocol import EntityData
from triplit_sync import TriplitClient

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
docs = {f"t{i:06d}": {"id": f"t{i:06d}", "text": f"todo {i} {i*7}", "completed": i % 3 == 0,
                      "created_at": f"2024-01-01T00:00:{i%60:02d}.{i%1000:03d}Z"} for i in range(N)}
c = TriplitClient("http://127.0.0.1:9", storage="memory", auto_connect=False)
got = threading.Event()
def on(rows):
    if len(rows) >= N: got.set()
c.subscribe(c.query("todos"), on, local_only=True)
t0 = time.process_time(); w0 = time.perf_counter()
changed = c._store.apply_server_changes({"todos": {"sets": docs, "deletes": set()}}, [1, 0, "server"])
c._engine.local_changes_applied(changed)
got.wait(60)
apply_cpu = time.process_time() - t0
q = c.query("todos").where("completed", "=", False).where("text", "like", "%7%").order("created_at", "DESC").limit(20)
t1 = time.process_time()
for _ in range(200):
    c.fetch(q, policy="local-only")
query_cpu = (time.process_time() - t1) / 200 * 1000
print(json.dumps({"apply_deliver_cpu_s": round(apply_cpu, 3), "local_query_cpu_ms": round(query_cpu, 3)}))
c.close()
