"""Every write whose call returned reaches the server, whatever the process model (issue 13.1-13.3):
a multiprocessing fork pool and a spawn pool writing through one client name, Django's
autoreloader pattern, a same-process re-creation, and a Flask app under real gunicorn (with and
without --preload) while the Triplit server is down for a while and workers are SIGKILLed and
SIGTERMed. Real processes, real server (one with sqlite storage, so stopping it loses nothing)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import httpx
import pytest

from tests.support.session import SAMPLE_SCHEMA, Script, run_script, script_env, wait_until
from tests.support.slots import WRITER, server_ids
from triplit_sync import StorageLockedError, TriplitClient
from triplit_sync.testing import TriplitTestServer

TODO = '{"id": tid, "text": "t", "owner": "x", "completed": False, "created_at": "2025-01-01T00:00:00.000Z"}'

# Module imported by pool workers (spawn needs an importable module) and by gunicorn.
APP = f'''
import os
from triplit_sync import TriplitClient

client = None

def open_client():
    global client
    client = TriplitClient(os.environ["T_URL"], os.environ["T_TOKEN"], data_dir=os.environ["T_DIR"], name="app")
    return client

def write(tid):
    client.insert("todos", {TODO})
    return tid

if os.environ.get("T_AT_IMPORT"):
    open_client()

try:
    from flask import Flask
except ImportError:
    app = None
else:
    app = Flask(__name__)

    @app.post("/write/<tid>")
    def write_view(tid):
        write(tid)
        return {{"pid": os.getpid()}}

    @app.get("/pid")
    def pid_view():
        return {{"pid": os.getpid()}}
'''

POOL = """
import json, multiprocessing, os, sys
sys.path.insert(0, os.environ["T_APP_DIR"])
import appmod
method = sys.argv[1]
ctx = multiprocessing.get_context(method)
if method == "fork":
    appmod.open_client()  # created before the fork: every worker inherits it
    appmod.write("parent-0")
    pool = ctx.Pool(3)
else:
    pool = ctx.Pool(3, initializer=appmod.open_client)  # each spawned worker opens the name
ids = pool.map(appmod.write, [f"{method}-{i}" for i in range(60)], chunksize=5)
print("RETURNED " + json.dumps(ids), flush=True)
pool.terminate()  # SIGTERM to every worker, mid-sync
pool.join()
if appmod.client is not None:
    appmod.client.wait_for_sync(20)
print("DONE", flush=True)
"""


@pytest.fixture(scope="module")
def durable_server() -> Iterator[TriplitTestServer]:
    """A server of its own, on sqlite storage: stopping and starting it keeps its data."""
    with TriplitTestServer(SAMPLE_SCHEMA, storage="sqlite") as server:
        yield server


@pytest.fixture
def server(durable_server: TriplitTestServer) -> TriplitTestServer:
    if not durable_server.running:
        durable_server.start()
    durable_server.reset()
    return durable_server


def _env(server: TriplitTestServer, tmp_path: Path, **extra: str) -> Dict[str, str]:
    app_dir = tmp_path / "appsrc"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "appmod.py").write_text(APP)
    env = {"T_URL": server.url, "T_TOKEN": server.service_token(), "T_DIR": str(tmp_path / "data"),
           "T_APP_DIR": str(app_dir)}
    env.update(extra)
    return env


def _all_sent(server: TriplitTestServer, ids: List[str], timeout: float) -> None:
    want = set(ids)
    assert wait_until(lambda: want <= server_ids(server), timeout, step=0.2), \
        f"lost {len(want - server_ids(server))} of {len(want)}: {sorted(want - server_ids(server))[:10]}"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_pool_writes_through_one_client_name(server: TriplitTestServer, tmp_path: Path, method: str) -> None:
    """Workers are terminated (SIGTERM) right after the last task returned: what they had not
    sent yet is in their slots and goes out through the next client of the name."""
    code, out, err = run_script(POOL, method, timeout=60, **_env(server, tmp_path))
    assert code == 0, err
    returned = json.loads(out[0].split(" ", 1)[1])
    assert len(returned) == 60 and out[1] == "DONE"
    if method == "fork":
        returned.append("parent-0")
    # What the workers and the parent had not sent when they ended is in their slots: the next
    # process of the name sends it.
    _reopen(server, tmp_path)
    _all_sent(server, returned, 20)
    for lock in (tmp_path / "data" / "app").glob("**/lock"):
        assert _outbox_rows(lock.parent) == 0, lock.parent  # moved, none left behind


def _outbox_rows(folder: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(str(folder / "cache.sqlite"))
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone():
            return 0  # a worker terminated while it was creating its slot
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
    finally:
        conn.close()


def _reopen(server: TriplitTestServer, tmp_path: Path) -> None:
    code = """
import os
from triplit_sync import TriplitClient
client = TriplitClient(os.environ["T_URL"], os.environ["T_TOKEN"], data_dir=os.environ["T_DIR"], name="app")
client.wait_for_sync(20)
client.close()
"""
    rc, _, err = run_script(code, timeout=40, **_env(server, tmp_path))
    assert rc == 0, err


def test_the_django_autoreloader_pattern(server: TriplitTestServer, tmp_path: Path) -> None:
    """runserver runs AppConfig.ready() in the reloader process and again in the server process
    it starts, and restarts that one on every code change. The same pattern without Django: a
    process holding the name starts a second one with the same name, which writes and is
    replaced (once SIGKILLed, once ending normally) by a new one; nothing is locked out or lost."""
    env = _env(server, tmp_path)
    outer = Script(WRITER, server.url, env["T_TOKEN"], env["T_DIR"], "app", "5", "outer", "offline")
    outer.wait_line("WROTE")
    inner = Script(WRITER, server.url, env["T_TOKEN"], env["T_DIR"], "app", "10", "inner1", "offline")
    assert inner.wait_line("WROTE")[1].endswith(os.path.join("slots", "1"))
    os.kill(inner.proc.pid, signal.SIGKILL)  # a code change: the reloader kills and restarts it
    inner.wait_exit(10)
    rc, out, err = run_script(WRITER, server.url, env["T_TOKEN"], env["T_DIR"], "app", "10", "inner2", "sync")
    assert rc == 0, err
    assert out[0].endswith(os.path.join("slots", "1")) and out[1] == "SYNCED"
    outer.kill()
    outer.wait_exit(10)
    _reopen(server, tmp_path)  # the next `runserver`
    _all_sent(server, [f"{p}-{i}" for p, n in (("outer", 5), ("inner1", 10), ("inner2", 10))
                       for i in range(n)], 20)


def test_a_same_process_recreation(server: TriplitTestServer, tmp_path: Path) -> None:
    """A notebook re-running its cell: a clear error while the old client is open, a working
    client (with the old one's unsent writes) once it is closed."""
    first = TriplitClient(server.url, server.service_token(), data_dir=tmp_path, name="nb", auto_connect=False)
    first.insert("todos", {"id": "nb-0", "text": "t", "owner": "x", "completed": False,
                           "created_at": "2025-01-01T00:00:00.000Z"})
    with pytest.raises(StorageLockedError, match=r"already open in this process.*close\(\)"):
        TriplitClient(server.url, server.service_token(), data_dir=tmp_path, name="nb")
    first.close()
    second = TriplitClient(server.url, server.service_token(), data_dir=tmp_path, name="nb")
    try:
        second.wait_for_sync(20)
    finally:
        second.close()
    assert "nb-0" in server_ids(server)


# --------------------------------------------------------------------------- gunicorn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gunicorn:
    def __init__(self, env: Dict[str, str], preload: bool, log: Path) -> None:
        self.port = _free_port()
        args = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{self.port}",
                "--graceful-timeout", "5", "--timeout", "20", "--chdir", env["T_APP_DIR"], "appmod:app"]
        if preload:
            args.insert(3, "--preload")
        self._log = open(log, "w")
        self.proc = subprocess.Popen(args, env=script_env(**env), stdout=self._log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def up(self) -> bool:
        try:
            return self.http.get("/pid").status_code == 200
        except httpx.HTTPError:
            return False

    def write(self, tid: str) -> Optional[int]:
        """The worker's pid if the view returned 200, else None."""
        try:
            r = self.http.post(f"/write/{tid}")
        except httpx.HTTPError:
            return None
        return int(r.json()["pid"]) if r.status_code == 200 else None

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.mark.parametrize("preload", [True, False], ids=["preload", "no-preload"])
def test_gunicorn_loses_no_acknowledged_write(server: TriplitTestServer, tmp_path: Path, preload: bool) -> None:
    """200 writes through a Flask view; the Triplit server is down from write 40 to 150, one
    worker is SIGKILLed at 80 and one SIGTERMed at 120: every write that got a 200 reaches the
    server once it is back."""
    env = _env(server, tmp_path, T_AT_IMPORT="1")
    log = tmp_path / "gunicorn.log"
    web = Gunicorn(env, preload, log)
    try:
        assert wait_until(web.up, 20, step=0.1), log.read_text()
        acknowledged: List[str] = []
        pids: List[int] = []
        killed: List[int] = []
        for n in range(200):
            if n == 40:
                server.stop()
            if n in (80, 120):
                victim = next((p for p in reversed(pids) if p not in killed), None)
                assert victim is not None
                os.kill(victim, signal.SIGKILL if n == 80 else signal.SIGTERM)
                killed.append(victim)
            if n == 150:
                server.start()
            tid = f"web-{n}"
            pid = web.write(tid)
            if pid is not None:
                acknowledged.append(tid)
                pids.append(pid)
        assert len(acknowledged) >= 150, log.read_text()  # the app kept serving throughout
        assert len(set(pids)) >= 3, pids  # the killed workers were replaced
        _all_sent(server, acknowledged, 30)
    finally:
        web.stop()
    text = log.read_text()
    assert "StorageLockedError" not in text and "Worker failed to boot" not in text, text
