"""The examples the README points at run, as written, against a real server."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The examples start their server in a child process, where tests/conftest.py's Node guard cannot see.
pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parent.parent


def test_todos_example_runs() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("TRIPLIT_URL", None)
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "todos.py")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "signed in with roles ['user']" in out
    # Ordered by created_at DESC: two todos inserted in one millisecond tie, in either order.
    shown = [sorted(ast.literal_eval(line.split(": ", 1)[1])) for line in out.splitlines()
             if line.startswith("open todos: ")]
    assert ["buy milk", "call mum"] in shown, out
    assert "rejected: WritePermissionError" in out
    assert "done: buy milk" in out
    assert "via HTTP: 4 todos" in out
