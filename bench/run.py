"""The benchmark: triplit_sync against the official JS client, same server, same data, interleaved.

    python -m bench                      # from the repository root; 3 rounds, about 10 minutes
    python -m bench --rounds 5 --json bench/results/run.json
    python -m bench --quick              # smoke test of the harness: small data, one round

One server (memory storage, the sample schema) for the whole run. Every scenario runs each client in
its own fresh process, round by round, with the client order rotated each round, so that the
server's drift over time falls on both clients alike. Before any run that writes, the server is
cleared and re-seeded, so every client sees identical data.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from triplit_sync.testing import TriplitTestServer

from bench import report, seed
from bench._proc import BENCH_DIR, REPO_ROOT, Runner, WorkerError

SCHEMA = REPO_ROOT / "tests" / "fixtures" / "sample-schema.json"
SCENARIOS = ("P1", "P2", "P3a", "P3b", "P4", "P5", "S1", "S2", "S4", "S5")  # P6 comes with P1, S3 with S2
P4_SETTLE_S = 5.0  # the least age of the seeded data when P4's clients first sync it


def machine() -> Dict[str, Any]:
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = 0
    try:
        node = subprocess.run(["node", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        node = "?"
    try:
        import triplit_sync

        version = getattr(triplit_sync, "__version__", "?")
    except ImportError:  # pragma: no cover
        version = "?"
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(mem / 2**30, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "node": node,
        "platform": platform.platform(),
        "triplit_sync": version,
        "js_client": "@triplit/client 1.0.50",
        "server": "@triplit/server 1.1.8 (memory storage)",
    }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: List[Dict[str, Any]] = []
        self.errors: List[str] = []
        self.server: Optional[TriplitTestServer] = None
        self.runner: Optional[Runner] = None
        self.todos: List[Dict[str, Any]] = []
        self.seeded: Optional[int] = None  # N on the server, or None when runs have written to it
        self.seeded_at = 0.0

    # ----------------------------------------------------------------- plumbing

    def log(self, text: str) -> None:
        if not self.args.quiet:
            print(text, file=sys.stderr, flush=True)

    def order(self, kinds: List[str], rnd: int) -> List[str]:
        if "py" in kinds:
            kinds = kinds + ["base"]  # the --baseline checkout does whatever triplit_sync does
        kinds = [k for k in kinds if k in self.args.clients]
        k = rnd % len(kinds) if kinds else 0
        return kinds[k:] + kinds[:k]

    def ensure_seeded(self, n: int) -> None:
        assert self.server is not None
        if self.seeded != n:
            t = time.perf_counter()
            self.todos = seed.seed(self.server, n)
            self.seeded = n
            self.seeded_at = time.monotonic()
            self.log(f"    seeded {n} todos in {time.perf_counter() - t:.1f} s")

    def job(self, scenario: str, kind: str, rnd: int, **extra: Any) -> Dict[str, Any]:
        assert self.server is not None and self.runner is not None
        return {
            "scenario": scenario, "url": self.server.url, "token": self.server.user_token(seed.USER_ID),
            "schema_path": str(SCHEMA), "user_id": seed.USER_ID, "id_prefix": f"{kind}r{rnd}w",
            "timeout_ms": self.args.timeout * 1000, "scratch": str(self.runner.data_root), **extra,
        }

    def run(self, kind: str, label: str, rnd: int, job: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        assert self.runner is not None
        t = time.perf_counter()
        try:
            result = self.runner.run(kind, job, timeout=self.args.timeout)
        except WorkerError as e:
            self.errors.append(f"round {rnd} {label} {kind}: {e}")
            self.log(f"    {label:<10} {kind:<3} FAILED: {str(e).splitlines()[0]}")
            return None
        result.update(round=rnd, label=label, client=kind)
        self.results.append(result)
        self.log(f"    {label:<10} {kind:<3} {_brief(result)}  ({time.perf_counter() - t:.1f} s)")
        return result

    # ----------------------------------------------------------------- scenarios

    def p1(self, rnd: int, n: int) -> None:
        self.ensure_seeded(n)
        self.warm_up(n)
        for kind in self.order(["raw", "py", "js"], rnd):
            self.run(kind, f"P1_{n}", rnd, self.job("P1", kind, rnd, n=n))

    def warm_up(self, n: int) -> None:
        """One unrecorded raw load: the first query after seeding is slower on the server (cold JIT
        and caches), and that must not fall on whichever client happens to run first."""
        assert self.runner is not None
        try:
            self.runner.run("raw", self.job("P1", "raw", -1, n=n), timeout=self.args.timeout)
        except WorkerError as e:
            self.log(f"    warm-up failed: {str(e).splitlines()[0]}")

    def writes(self, rnd: int, scenario: str, count: int) -> None:
        """A writing scenario per client, each on freshly seeded data; afterwards the server must
        hold every write (the check that an "ack" really was one)."""
        assert self.server is not None
        kinds = ["py", "js", "raw"] if scenario in ("P2", "P3a") else ["py", "js"]
        for kind in self.order(kinds, rnd):
            self.ensure_seeded(self.args.n_small)
            result = self.run(kind, scenario, rnd, self.job(scenario, kind, rnd, count=count))
            self.seeded = None
            if result is not None:
                status, body = self.server.post("stats", {})
                rows = {r.get("collection"): r.get("numEntities") for r in body} if status == 200 else {}
                result["server_rows_after"] = rows.get("todos")
                result["server_rows_expected"] = self.args.n_small + count

    def p2(self, rnd: int) -> None:
        self.writes(rnd, "P2", self.args.writes)

    def p3(self, rnd: int) -> None:
        if "P3a" in self.args.only:
            self.writes(rnd, "P3a", self.args.writes)
        if "P3b" in self.args.only:
            self.writes(rnd, "P3b", self.args.bulk)

    def p4(self, rnd: int) -> None:
        assert self.server is not None and self.runner is not None
        n = self.args.n_small
        self.ensure_seeded(n)
        # The scenario is "data that existed before the client synced". A client may (triplit_sync
        # does) ask the server to resend what changed shortly before its checkpoint, to be safe
        # about writes still in flight; data seeded a moment ago would fall in that window.
        settle = self.seeded_at + P4_SETTLE_S - time.monotonic()
        if settle > 0:
            time.sleep(settle)
        kinds = self.order(["py", "js", "raw"], rnd)
        dirs = {kind: str(self.runner.data_root / f"r{rnd}-{kind}") for kind in kinds}
        loaded = [kind for kind in kinds
                  if self.run(kind, "P4_load", rnd,
                              self.job("P4_load", kind, rnd, n=n, data_dir=dirs[kind], name="bench-p4"))]
        expect = seed.apply_p4_changes(self.server, self.todos)
        self.seeded = None
        for kind in loaded:
            self.run(kind, "P4_resume", rnd,
                     self.job("P4_resume", kind, rnd, n=n, data_dir=dirs[kind], name="bench-p4",
                              expect=expect))

    def p5(self, rnd: int) -> None:
        self.ensure_seeded(self.args.n_small)
        for kind in self.order(["py", "js"], rnd):
            self.run(kind, "P5", rnd, self.job("P5", kind, rnd, n=self.args.n_small, runs=self.args.queries))

    # ----------------------------------------------------------------- scale (issue 18)

    def s1(self, rnd: int, n: int) -> None:
        self.ensure_seeded(n)
        for kind in self.order(["py", "js"], rnd):
            # The JS client's queries take ~1 s each at 200 000: fewer runs on the large data.
            runs = self.args.queries if n == self.args.n_small else self.args.s1_runs_huge
            self.run(kind, f"S1_{n}", rnd, self.job("S1", kind, rnd, n=n, runs=runs))

    def s2(self, rnd: int) -> None:
        """S2/S3: each client syncs the large data durably in one process, then reopens it in another."""
        assert self.runner is not None
        n = self.args.n_huge
        self.ensure_seeded(n)
        kinds = self.order(["py", "js"], rnd)
        dirs = {kind: str(self.runner.data_root / f"s2-r{rnd}-{kind}") for kind in kinds}
        loaded = [kind for kind in kinds
                  if self.run(kind, "S2_load", rnd,
                              self.job("S2_load", kind, rnd, n=n, data_dir=dirs[kind], name="bench-s2"))]
        for kind in loaded:
            self.run(kind, "S2_reopen", rnd,
                     self.job("S2_reopen", kind, rnd, n=n, data_dir=dirs[kind], name="bench-s2"))

    def s4(self, rnd: int) -> None:
        assert self.server is not None
        count = self.args.s4_writes
        for kind in self.order(["py", "js"], rnd):
            self.ensure_seeded(self.args.n_small)
            result = self.run(kind, "S4", rnd, self.job("S4", kind, rnd, n=self.args.n_small, count=count,
                                                        queries=self.args.s4_queries))
            self.seeded = None
            if result is not None:
                status, body = self.server.post("stats", {})
                rows = {r.get("collection"): r.get("numEntities") for r in body} if status == 200 else {}
                result["server_rows_after"] = rows.get("todos")
                result["server_rows_expected"] = self.args.n_small + count + count // 4

    def s5(self, rnd: int) -> None:
        """S5: `s5_subscribers` processes of one client kind on P2's live query, one writer of the
        same kind; per write, insert call -> the last subscriber's callback (wall clock)."""
        assert self.runner is not None and self.server is not None
        count, subs = self.args.s5_writes, self.args.s5_subscribers
        for kind in self.order(["py", "js"], rnd):
            self.ensure_seeded(self.args.n_small)
            prefix = f"{kind}r{rnd}s5w"
            job = self.job("S5_sub", kind, rnd, count=count, watch_prefix=prefix)
            t = time.perf_counter()
            procs = []
            try:
                for _ in range(subs):
                    procs.append(self.runner.start(kind, job, "S5_READY"))
                writer = self.runner.run(kind, self.job("S5_write", kind, rnd, count=count, watch_prefix=prefix),
                                         timeout=self.args.timeout)
                seen = [self.runner.finish(p, kind, job, timeout=120)["seen"] for p in procs]
            except WorkerError as e:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                        p.communicate()
                self.errors.append(f"round {rnd} S5 {kind}: {e}")
                self.log(f"    S5         {kind:<3} FAILED: {str(e).splitlines()[0]}")
                self.seeded = None
                continue
            self.seeded = None
            started = writer["started"]
            last = [max(s.get(i, float("inf")) for s in seen) - t0 for i, t0 in started.items()]
            missing = sum(1 for x in last if x == float("inf"))
            result = {"scenario": "S5", "client": kind, "round": rnd, "label": "S5",
                      "fanout_ms": [x * 1000 for x in last if x != float("inf")], "missing": missing}
            self.results.append(result)
            if missing:
                self.errors.append(f"round {rnd} S5 {kind}: {missing} writes never reached every subscriber")
            self.log(f"    S5         {kind:<3} {_brief(result)}  ({time.perf_counter() - t:.1f} s)")

    def round(self, rnd: int) -> None:
        only = self.args.only
        # Read-only scenarios first on each data size, writers after, the big load last.
        if "P1" in only:
            self.p1(rnd, self.args.n_small)
        if "P5" in only:
            self.p5(rnd)
        if "S1" in only:
            self.s1(rnd, self.args.n_small)
        if "P4" in only:
            self.p4(rnd)
        if "P2" in only:
            self.p2(rnd)
        if "P3a" in only or "P3b" in only:
            self.p3(rnd)
        if "S4" in only:
            self.s4(rnd)
        if "S5" in only:
            self.s5(rnd)
        if "P1" in only:
            self.p1(rnd, self.args.n_large)
        if "S1" in only:
            self.s1(rnd, self.args.n_huge)
        if "S2" in only:
            self.s2(rnd)

    # ----------------------------------------------------------------- the run

    def main(self) -> int:
        info = machine()
        self.log(f"triplit_sync benchmark  {info['date']}  {info['nproc']} x {info['cpu']}  "
                 f"load {info['loadavg']}  python {info['python']}  node {info['node']}")
        with TriplitTestServer(schema=SCHEMA, storage="memory") as server, \
                Runner(self.args.timeout, self.args.baseline) as runner:
            self.server, self.runner = server, runner
            for rnd in range(self.args.rounds):
                self.log(f"round {rnd + 1}/{self.args.rounds}")
                self.round(rnd)
        rows = report.summarize(self.results, self.args.n_small, self.args.n_large, self.args.n_huge)
        checks = consistency(self.results)
        print(f"\ntriplit_sync vs @triplit/client 1.0.50 — {info['date']} — {info['nproc']} CPUs "
              f"({info['cpu']}), Python {info['python']}, Node {info['node']} — "
              f"{self.args.rounds} round(s), medians")
        print(report.table(rows))
        for line in checks + self.errors:
            print("! " + line.splitlines()[0])
        out = Path(self.args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "machine": info, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()},
            "summary": rows, "checks": checks, "errors": self.errors, "results": self.results,
        }, indent=1, default=list))
        print(f"\nJSON: {out}")
        return 1 if self.errors or checks else 0


def consistency(results: List[Dict[str, Any]]) -> List[str]:
    """Cross-client sanity checks: the same rows loaded, the same local query answer."""
    problems = []
    for r in results:
        if r["label"].startswith("P1_"):
            want = int(r["label"].split("_")[1])
            if r.get("rows") != want:
                problems.append(f"round {r['round']} {r['label']} {r['client']}: "
                                f"{r.get('rows')} rows, not {want}")
        if "server_rows_expected" in r and r.get("server_rows_after") != r["server_rows_expected"]:
            problems.append(f"round {r['round']} {r['label']} {r['client']}: the server holds "
                            f"{r.get('server_rows_after')} todos after the run, "
                            f"not {r['server_rows_expected']}")
    answers: Dict[Any, Dict[str, Any]] = {}
    for r in results:
        for key in ("result_ids", "indexed_ids", "scan_ids"):
            if r.get(key) is not None:
                answers.setdefault((r["round"], r["label"], key), {})[r["client"]] = r[key]
    for (rnd, label, key), by_client in answers.items():
        if len({tuple(ids) for ids in by_client.values()}) > 1:
            problems.append(f"round {rnd} {label}: the clients' local query results ({key}) differ: {by_client}")
    return problems


def _brief(result: Dict[str, Any]) -> str:
    parts = []
    for key, value in result.items():
        if key in ("client", "scenario", "round", "label", "server_rows_expected") or key.endswith("_ids"):
            continue
        if isinstance(value, list):
            if value and isinstance(value[0], (int, float)):
                parts.append(f"{key}=p50 {report.percentile(value, 50):.1f}")
            continue
        if isinstance(value, float):
            parts.append(f"{key}={value:.1f}")
        elif isinstance(value, int) and key.startswith(("rss", "bytes")):
            parts.append(f"{key}={value / 1e6:.1f}M" if value >= 1e6 else f"{key}={value}")
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--only", default=",".join(SCENARIOS),
                   help="scenarios, e.g. P1,P5 (P6 comes with P1, S3 with S2)")
    p.add_argument("--clients", default="py,js,raw", help="which of py, js, raw to run (default all)")
    p.add_argument("--n-small", type=int, default=10_000, help="todos for P1/P4/P5 and behind P2/P3")
    p.add_argument("--n-large", type=int, default=50_000, help="todos for the second P1 and P6")
    p.add_argument("--writes", type=int, default=500, help="sequential writes in P2 and P3a")
    p.add_argument("--bulk", type=int, default=10_000, help="inserts in P3b")
    p.add_argument("--queries", type=int, default=200, help="local query runs in P5 and S1")
    p.add_argument("--n-huge", type=int, default=200_000, help="todos for the large S1 and S2/S3")
    p.add_argument("--s5-subscribers", type=int, default=8, help="subscriber processes in S5")
    p.add_argument("--s5-writes", type=int, default=100, help="writes in S5")
    p.add_argument("--s1-runs-huge", type=int, default=20, help="runs of each S1 query on the large data")
    p.add_argument("--s4-queries", type=int, default=200, help="live queries in S4")
    p.add_argument("--s4-writes", type=int, default=100, help="writes in S4 with all its live queries")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before a worker is killed")
    p.add_argument("--json", default=str(BENCH_DIR / "results" / "latest.json"),
                   help="where to write the JSON (default bench/results/latest.json)")
    p.add_argument("--quick", action="store_true", help="1 round, small data: checks the harness, not speed")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--baseline", type=Path, default=None,
                   help="a checkout of an earlier triplit_sync (e.g. a git worktree): its worker runs as "
                        "client 'base' in the same interleaved rounds, to compare a change with what it replaced")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.n_small, args.n_large = 1, 1000, 3000
        args.writes, args.bulk, args.queries = 30, 500, 20
        args.n_huge, args.s4_queries, args.s4_writes, args.s1_runs_huge = 5000, 20, 20, 5
        args.s5_subscribers, args.s5_writes = 3, 10
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if args.baseline is not None:
        if not (args.baseline / "bench" / "py_worker.py").is_file():
            p.error(f"--baseline {args.baseline} is not a triplit_sync checkout with bench/py_worker.py")
        args.baseline = args.baseline.resolve()
        args.clients.append("base")
    if "S3" in args.only and "S2" not in args.only:
        args.only.append("S2")
    unknown = [s for s in args.only if s not in SCENARIOS + ("P6", "S3")]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}: choose from {', '.join(SCENARIOS)}")
    if "P6" in args.only and "P1" not in args.only:
        args.only.append("P1")
    bad = [c for c in args.clients if c not in ("py", "js", "raw", "base")]
    if bad:
        p.error(f"unknown client(s) {bad}: choose from py, js, raw")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    return Bench(parse_args(argv)).main()


if __name__ == "__main__":
    sys.exit(main())
