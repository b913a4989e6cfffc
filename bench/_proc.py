"""Runs one scenario in a fresh process per client and reads back its one-line JSON result.

Python workers run as ``python -m bench.<module>`` from the repository root, so they import this
checkout's ``triplit_sync``. The JS worker must sit next to a ``node_modules`` for Node's ESM
resolution (NODE_PATH does not apply to ``import``), so it is copied into a scratch folder whose
``node_modules`` is a symlink to the pinned JS client's install (better-sqlite3 comes from the
server's install, named by ``TRIPLIT_SYNC_SERVER_MODULES``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

from triplit_sync.testing import ensure_js_client_installed, ensure_server_installed

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULT_PREFIX = "BENCH_RESULT "

#: Which program runs each client kind.
PY_MODULES = {"py": "bench.py_worker", "raw": "bench.raw_reader"}


class WorkerError(RuntimeError):
    pass


def _websocket_flags(node: str) -> "list[str]":
    """Node 22+ has a global WebSocket; Node 20/21 need a flag for the same (undici) one."""
    probe = [node, "-e", "process.exit(typeof WebSocket === 'undefined' ? 1 : 0)"]
    if subprocess.run(probe).returncode == 0:
        return []
    if subprocess.run(probe[:1] + ["--experimental-websocket"] + probe[1:]).returncode == 0:
        return ["--experimental-websocket"]
    raise WorkerError(f"{node} has no WebSocket, not even with --experimental-websocket: use Node >= 20.10")


class Runner:
    """Owns the scratch folder for the JS worker; `run(kind, job)` returns the worker's result dict."""

    def __init__(self, timeout: float = 900.0, baseline: Optional[Path] = None) -> None:
        self.timeout = timeout
        #: a checkout of an earlier triplit_sync, whose own bench.py_worker runs as client "base"
        self.baseline = baseline
        self.node = os.environ.get("TRIPLIT_SYNC_NODE") or shutil.which("node") or "node"
        self.node_flags = _websocket_flags(self.node)
        self._scratch = Path(tempfile.mkdtemp(prefix="triplit-bench-"))
        self.js_dir = self._scratch / "js"
        self.js_dir.mkdir()
        os.symlink(ensure_js_client_installed() / "node_modules", self.js_dir / "node_modules")
        # better-sqlite3 (the JS client's durable storage in P4) is built once, in the server's install.
        self.server_modules = ensure_server_installed() / "node_modules"
        (self.js_dir / "package.json").write_text('{"type": "module", "private": true}\n')
        for script in (BENCH_DIR / "js").glob("*.mjs"):
            shutil.copy2(script, self.js_dir / script.name)
        self.data_root = self._scratch / "data"
        self.data_root.mkdir()

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def command(self, kind: str) -> "tuple[list[str], Path]":
        if kind == "js":
            return [self.node, *self.node_flags, str(self.js_dir / "worker.mjs")], self.js_dir
        if kind == "base":
            assert self.baseline is not None
            return [sys.executable, "-m", PY_MODULES["py"]], self.baseline
        return [sys.executable, "-m", PY_MODULES[kind]], REPO_ROOT

    def start(self, kind: str, job: Dict[str, Any], ready: str) -> "subprocess.Popen[str]":
        """Start a worker and return once it printed the line ``ready`` (for scenarios with
        several processes at once); :meth:`finish` collects its result."""
        cmd, cwd = self.command(kind)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        proc.stdin = None  # communicate() in finish() must not flush it
        for line in proc.stdout:
            if line.strip() == ready:
                return proc
        proc.wait()
        raise WorkerError(f"{kind} {job['scenario']} ended before {ready} (exit {proc.returncode}):\n"
                          f"{(proc.stderr.read() if proc.stderr else '')[-3000:]}")

    def finish(self, proc: "subprocess.Popen[str]", kind: str, job: Dict[str, Any],
               timeout: Optional[float] = None) -> Dict[str, Any]:
        try:
            out, err = proc.communicate(timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise WorkerError(f"{kind} {job['scenario']} timed out") from None
        for line in reversed(out.splitlines()):
            if line.startswith(RESULT_PREFIX):
                result: Dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
                return result
        raise WorkerError(f"{kind} {job['scenario']} failed (exit {proc.returncode}):\n{err[-3000:]}")

    def run(self, kind: str, job: Dict[str, Any], timeout: Optional[float] = None) -> Dict[str, Any]:
        cmd, cwd = self.command(kind)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(cwd) + os.pathsep + env.get("PYTHONPATH", "")
        env["TRIPLIT_SYNC_SERVER_MODULES"] = str(self.server_modules)
        try:
            proc = subprocess.run(
                cmd, cwd=cwd, env=env, input=json.dumps(job), text=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout or self.timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise WorkerError(f"{kind} {job['scenario']} timed out after {e.timeout:.0f} s") from None
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith(RESULT_PREFIX):
                result: Dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
                return result
        raise WorkerError(
            f"{kind} {job['scenario']} failed (exit {proc.returncode}):\n"
            f"{proc.stderr[-3000:]}{proc.stdout[-1000:]}"
        )
