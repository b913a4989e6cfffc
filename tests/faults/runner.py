"""Runs scenarios by name, each inside its own guard, and writes RESULTS.md."""

from __future__ import annotations

import datetime
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
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    m = machine()
    lines = [
        "# Fault suite: recorded results",
        "",
        f"Recorded {now} by `{command}` at commit `{_git('rev-parse', '--short', 'HEAD')}` "
        f"(branch `{_git('rev-parse', '--abbrev-ref', 'HEAD')}`).",
        "",
        f"Machine: {m['uname']}, {m['cpus']} CPUs; Python {m['python']}; Node {m['node']}; {m['server']}.",
        "",
        "What each scenario does and counts: [README.md](README.md). Times are wall-clock on a loopback",
        "network, on a machine shared with other work: read them as orders of magnitude.",
        "",
        "| scenario | mode | result | time |",
        "|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.name} | {r.mode} | {'PASS' if r.passed else 'FAIL'} | {r.seconds:.0f} s |")
    for r in results:
        lines += ["", f"## {r.name}: {'PASS' if r.passed else 'FAIL'}", "", "| figure | value |", "|---|---|"]
        for k, v in r.figures.items():
            lines.append(f"| {k} | {str(v).replace('|', '/')} |")
        if r.failures:
            lines += ["", "Failures:", ""]
            lines += [f"- {f.splitlines()[0][:400]}" for f in r.failures]
    RESULTS.write_text("\n".join(lines) + "\n")
    return RESULTS
