"""Profile one triplit_sync scenario with cProfile, across all of the client's threads.

    python -m bench.hotspots P1 --n 50000            # where the initial load spends its time
    python -m bench.hotspots P5 --sort cumulative    # the local query
    python -m bench.hotspots P4                      # load, change, resume (profiles the resume)
    python -m bench.hotspots S4 --count 100          # 200 live queries, writes touching one each

cProfile only sees the thread that enabled it; the client's work happens on its reader and
dispatcher threads, so every thread started here gets its own profiler, merged at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List

from triplit_sync.testing import TriplitTestServer

from bench import py_scale, py_worker, seed
from bench.run import P4_SETTLE_S, SCHEMA

_profiles: List[cProfile.Profile] = []
_original_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    profile = cProfile.Profile()
    _profiles.append(profile)
    profile.enable()
    try:
        _original_run(self)
    finally:
        profile.disable()


def profiled(fn: Callable[[], Any]) -> Any:
    threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    main = cProfile.Profile()
    _profiles.append(main)
    try:
        main.enable()
        try:
            return fn()
        finally:
            main.disable()
    finally:
        threading.Thread.run = _original_run  # type: ignore[method-assign]


def main(argv: "List[str] | None" = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", choices=["P1", "P2", "P3a", "P3b", "P4", "P5", "S1", "S4"])
    p.add_argument("--n", type=int, default=10_000, help="todos on the server (default 10000)")
    p.add_argument("--count", type=int, default=500, help="writes for P2 / P3a / P3b")
    p.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative, ...)")
    p.add_argument("--limit", type=int, default=35, help="lines of the profile to print")
    p.add_argument("--out", help="also save the merged stats to this file (for snakeviz etc.)")
    args = p.parse_args(argv)

    with TriplitTestServer(schema=SCHEMA) as server:
        todos = seed.seed(server, args.n)
        scratch = tempfile.mkdtemp(prefix="triplit-bench-profile-")
        job: Dict[str, Any] = {
            "url": server.url, "token": server.user_token(seed.USER_ID), "schema_path": str(SCHEMA),
            "user_id": seed.USER_ID, "id_prefix": "prof", "n": args.n, "count": args.count, "runs": 200,
            "queries": 200,
            "scratch": scratch, "data_dir": os.path.join(scratch, "p4"), "name": "bench-profile",
            "timeout_ms": 600_000,
        }
        # The first query after seeding is slow on the server; keep that out of the profile.
        py_worker.p1(dict(job, scenario="P1"))
        if args.scenario == "P4":
            time.sleep(P4_SETTLE_S)  # as in the benchmark: the data is older than the resume margin
            py_worker.p4_load(dict(job, scenario="P4_load"))
            job["expect"] = seed.apply_p4_changes(server, todos)
            fn, name = py_worker.p4_resume, "P4_resume"
        else:
            fn = {"P1": py_worker.p1, "P2": py_worker.p2, "P3a": py_worker.p3a, "P3b": py_worker.p3b,
                  "P5": py_worker.p5, "S1": py_scale.s1, "S4": py_scale.s4}[args.scenario]
            name = args.scenario
        t = time.perf_counter()
        try:
            result = profiled(lambda: fn(dict(job, scenario=name)))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        wall = time.perf_counter() - t
    brief = {k: v for k, v in result.items() if not isinstance(v, list)}
    print(f"{name}: {wall:.2f} s wall under the profiler; {brief}")
    stats = pstats.Stats(*[p for p in _profiles if p.getstats()], stream=sys.stdout)
    if args.out:
        stats.dump_stats(args.out)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
