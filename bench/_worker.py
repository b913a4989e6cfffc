"""What every Python worker process shares: the job on stdin, the result line on stdout, RSS."""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any, Callable, Dict

RESULT_PREFIX = "BENCH_RESULT "
now = time.perf_counter


def rss() -> int:
    """Resident set size of this process in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return 0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def main(client: str, scenarios: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]]) -> None:
    job = json.loads(sys.stdin.read())
    run = scenarios.get(job["scenario"])
    if run is None:
        sys.stderr.write(f"unknown scenario {job['scenario']}\n")
        sys.exit(2)
    try:
        result = run(job)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        sys.exit(1)
    line = json.dumps({"client": client, "scenario": job["scenario"], **result})
    sys.stdout.write(RESULT_PREFIX + line + "\n")
    sys.stdout.flush()
