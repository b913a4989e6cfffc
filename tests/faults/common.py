"""What every fault scenario shares: its result (figures, failures), percentiles, the machine
description for RESULTS.md, RSS, and a thread-exception counter."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
SCHEMA = TESTS / "fixtures" / "sample-schema.json"


@dataclass
class Result:
    """One scenario's outcome: ``figures`` are printed and recorded, ``failures`` say why it failed."""

    name: str
    mode: str
    figures: Dict[str, Any] = field(default_factory=dict)
    failures: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)

    def report(self) -> str:
        lines = [f"== {self.name} ({self.mode}, {self.seconds:.1f} s): {'PASS' if self.passed else 'FAIL'}"]
        for k, v in self.figures.items():
            lines.append(f"   {k}: {v}")
        for f in self.failures:
            lines.append(f"   FAIL: {f}")
        return "\n".join(lines)


def percentiles(values: Sequence[float]) -> str:
    """``p50 / p99 / max`` in milliseconds, or ``n/a`` without values."""
    if not values:
        return "n/a"
    s = sorted(values)

    def pick(q: float) -> float:
        return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]

    return f"p50 {pick(0.5) * 1000:.0f} ms / p99 {pick(0.99) * 1000:.0f} ms / max {s[-1] * 1000:.0f} ms (n={len(s)})"


def rss_mb() -> float:
    """This process's resident set size in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine() -> Dict[str, str]:
    """uname, CPU count, Python, Node and the pinned server version, for RESULTS.md."""
    import json

    node = "?"
    try:
        node = subprocess.run([os.environ.get("TRIPLIT_SYNC_NODE", "node"), "--version"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    pkg = json.loads((ROOT / "triplit_sync" / "server" / "package.json").read_text())
    deps = pkg.get("dependencies", {})
    server = deps.get("@triplit/server", "?")
    u = platform.uname()
    return {
        "uname": f"{u.system} {u.release} {u.machine}",
        "cpus": str(os.cpu_count()),
        "python": sys.version.split()[0],
        "node": node,
        "server": f"@triplit/server {server}",
    }


class ThreadErrors:
    """Counts exceptions that escape any thread while installed (``with ThreadErrors() as errs``).

    They are the scenario's to report (as figures and failures), so they are not passed on to
    the previous hook (pytest's guard in tests/conftest.py would fail the test a second time);
    the first few tracebacks go to stderr."""

    def __init__(self) -> None:
        self.errors: List[str] = []
        self._previous: Any = None

    def __enter__(self) -> "ThreadErrors":
        self._previous = threading.excepthook

        def hook(args: threading.ExceptHookArgs) -> None:
            name = args.thread.name if args.thread else "?"
            self.errors.append(f"{name}: {args.exc_type.__name__}: {args.exc_value}")
            if len(self.errors) <= 3:
                traceback.print_exception(args.exc_type, args.exc_value, args.exc_traceback, limit=12,
                                          file=sys.stderr)

        threading.excepthook = hook
        return self

    def __exit__(self, *exc: Any) -> None:
        threading.excepthook = self._previous


class Deadline:
    """A scenario's time budget: ``left()`` seconds remain, ``over`` once spent."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, cap: Optional[float] = None) -> float:
        rest = max(0.0, self.end - time.monotonic())
        return rest if cap is None else min(cap, rest)

    @property
    def over(self) -> bool:
        return time.monotonic() >= self.end
