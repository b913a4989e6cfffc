"""`triplit-sync dev` as a child process for tests: started, its banner read, stopped."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from pathlib import Path
from typing import Dict, Iterator, List, Sequence


@contextlib.contextmanager
def running_dev(argv: Sequence[str], env: Dict[str, str], cwd: Path) -> Iterator[str]:
    """Run ``argv`` (a `triplit-sync dev` command) and yield its output up to the banner's last
    line; SIGTERM (then SIGKILL) when the block ends."""
    proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: List[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(300) and proc.poll() is None, "".join(lines)
        yield "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait(5)
