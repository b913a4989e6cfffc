"""Runs scenarios by name, each inside its own guard, and writes RESULTS.md."""

from __future__ import annotations

import datetime
import json
import subprocess
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List

from . import hostile, kill9, restarts, threads
from .common import ROOT, Result, ThreadErrors, machine

SCENARIOS: Dict[str, Callable[..., Result]] = {
    "kill9": kill9.run,
    "restarts": restarts.run,
    "hostile": hostile.run,
    "threads": threads.run,
}
RESULTS = Path(__file__).with_name("RESULTS.md")
RESULTS_JSON = Path(__file__).with_name("results.json")


def run_one(name: str, quick: bool, seed: int = 1, **kwargs: object) -> Result:
    """One scenario; an exception in the scenario itself becomes a failure, not a crash of the run."""
    started = time.monotonic()
    with ThreadErrors() as errors:
        try:
            res = SCENARIOS[name](quick=quick, seed=seed, **kwargs)
        except Exception as e:
            res = Result(name, "quick" if quick else "full")
            res.failures.append(f"the scenario crashed: {type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}")
            res.seconds = time.monotonic() - started
    if errors.errors:
        res.figures["exceptions on other background threads"] = len(errors.errors)
        res.failures.append(f"exceptions on background threads: {errors.errors[:3]}")
    return res


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def write_results(results: List[Result], command: str) -> Path:
    """Record ``results`` in results.json (one entry per scenario, so a ``--only`` run replaces
    just its own) and render RESULTS.md from all entries."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = f"{_git('rev-parse', '--short', 'HEAD')} ({_git('rev-parse', '--abbrev-ref', 'HEAD')})"
    try:
        stored: Dict[str, Dict[str, object]] = json.loads(RESULTS_JSON.read_text())
    except (OSError, ValueError):
        stored = {}
    for r in results:
        stored[r.name] = {"mode": r.mode, "passed": r.passed, "seconds": round(r.seconds),
                          "figures": {k: str(v) for k, v in r.figures.items()},
                          "failures": [f.splitlines()[0][:400] for f in r.failures],
                          "recorded": now, "command": command, "commit": commit, "machine": machine()}
    RESULTS_JSON.write_text(json.dumps(stored, indent=1) + "\n")
    lines = [
        "# Fault suite: recorded results",
        "",
        "Written by `python -m tests.faults --full --record` (a `--only` run replaces its own",
        "scenarios); the data is in results.json. What each scenario does and counts:",
        "[README.md](README.md). Times are wall-clock on a loopback network, on a machine shared",
        "with other work: read them as orders of magnitude.",
        "",
        "| scenario | mode | result | time | recorded | commit |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in stored.items():
        lines.append(f"| {name} | {e['mode']} | {'PASS' if e['passed'] else 'FAIL'} | {e['seconds']} s "
                     f"| {e['recorded']} | `{e['commit']}` |")
    machines = {json.dumps(e["machine"], sort_keys=True) for e in stored.values()}
    for mj in sorted(machines):
        m = json.loads(mj)
        lines += ["", f"Machine: {m['uname']}, {m['cpus']} CPUs; Python {m['python']}; Node {m['node']}; "
                      f"{m['server']}."]
    for name, e in stored.items():
        lines += ["", f"## {name}: {'PASS' if e['passed'] else 'FAIL'}", "",
                  f"`{e['command']}`, {e['recorded']}", "", "| figure | value |", "|---|---|"]
        for k, v in e["figures"].items():  # type: ignore[attr-defined]
            lines.append(f"| {k} | {str(v).replace('|', '/')} |")
        if e["failures"]:
            lines += ["", "Failures:", ""]
            lines += [f"- {f}" for f in e["failures"]]  # type: ignore[attr-defined]
    RESULTS.write_text("\n".join(lines) + "\n")
    return RESULTS
