"""The examples the README points at run, as written, against a real server."""

from __future__ import annotations

import ast
import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from triplit_sync import DEMO_SCHEMA, HttpClient, Query
from triplit_sync.testing import TriplitTestServer

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


def _env(tmp_path: Path, **extra: str) -> "dict[str, str]":
    env = dict(os.environ, PYTHONPATH=str(REPO), XDG_DATA_HOME=str(tmp_path / "user-data"), **extra)
    env.pop("PYTEST_ADDOPTS", None)  # CI's --junitxml is the outer run's
    env.pop("TRIPLIT_URL", None)
    env.update(extra)
    return env


def _nothing_in_user_data(tmp_path: Path) -> bool:
    root = tmp_path / "user-data"
    return not root.exists() or not any(root.rglob("*"))


def test_flask_app_and_its_unittest_suite_run(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "unittest", "-v", "examples/test_app.py"], cwd=REPO,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Ran 4 tests" in proc.stderr and "\nOK" in proc.stderr, proc.stderr
    assert _nothing_in_user_data(tmp_path)  # the app's client used the test's folder, the mixin its own


@pytest.fixture(scope="module")
def demo_module_server() -> Iterator[TriplitTestServer]:
    with TriplitTestServer(DEMO_SCHEMA) as server:
        yield server


@pytest.fixture
def demo_server(demo_module_server: TriplitTestServer) -> TriplitTestServer:
    """`triplit-sync dev`'s schema, emptied before the test."""
    demo_module_server.reset()
    return demo_module_server


def test_django_management_command_and_views(demo_server: TriplitTestServer, tmp_path: Path) -> None:
    site = REPO / "examples" / "django_app"
    env = _env(tmp_path, TRIPLIT_URL=demo_server.url, TRIPLIT_SERVICE_TOKEN=demo_server.service_token(),
               TRIPLIT_DATA_DIR=str(tmp_path / "triplit"))
    added = subprocess.run([sys.executable, "manage.py", "add_todo", "buy milk", "--owner", "alice"], cwd=site,
                           env=env, capture_output=True, text=True, timeout=120)
    assert added.returncode == 0 and added.stdout.startswith("added "), added.stdout + added.stderr
    views = textwrap.dedent(f"""
        import json
        from django.test import Client
        web = Client()
        print(json.dumps(web.get("/todos/").json()))
        print(json.dumps(web.get("/mine/?owner=alice", HTTP_AUTHORIZATION="Bearer {demo_server.user_token('alice')}").json()))
        print(web.get("/mine/?owner=alice").status_code)
    """)
    shown = subprocess.run([sys.executable, "manage.py", "shell", "-c", views], cwd=site, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    all_open, mine, anonymous = shown.stdout.strip().splitlines()[-3:]
    assert [t["text"] for t in json.loads(all_open)] == ["buy milk"]
    assert json.loads(mine) == ["buy milk"]
    assert anonymous == "401"
    assert _nothing_in_user_data(tmp_path)


def test_worker_does_jobs_across_token_refreshes(demo_server: TriplitTestServer, tmp_path: Path) -> None:
    env = _env(tmp_path, TRIPLIT_URL=demo_server.url, TRIPLIT_SECRET=demo_server.secret)
    proc = subprocess.Popen([sys.executable, str(REPO / "examples" / "worker.py"), "--token-lifetime", "3",
                             "--stop-on-eof", "--data-dir", str(tmp_path / "worker")], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in proc.stdout or ()],
                     daemon=True).start()
    seen: "list[str]" = []

    def wait_for(text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"worker never said {text!r}; said {seen}"
            try:
                seen.append(lines.get(timeout=left))
            except queue.Empty:
                pass

    try:
        http = HttpClient(demo_server.url, demo_server.service_token(), schema=DEMO_SCHEMA)
        wait_for("ready")
        http.insert("todos", {"text": "auto: wash car", "owner": "worker"})
        http.insert("todos", {"text": "by hand", "owner": "worker"})
        wait_for("done: auto: wash car")
        wait_for("refreshed the token (1)")  # 1 s before the 3 s token's exp
        wait_for("refreshed the token (2)")  # ...and its successor's: the session lives on
        http.insert("todos", {"text": "auto: pay rent", "owner": "worker"})
        wait_for("done: auto: pay rent")
        assert proc.stdin is not None
        proc.stdin.close()
        wait_for("stopped")
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
        done = {t["text"]: t["completed"] for t in http.fetch(Query("todos"))}
        assert done == {"auto: wash car": True, "by hand": False, "auto: pay rent": True}
        assert not [line for line in seen if line.startswith("refresh failed")]
        http.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
