"""What a newcomer meets in the first hour, without Node: the install's progress lines, errors that
teach (a schema hint, a status on every HTTP error), result lists that Jupyter draws as tables."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import socket
import sys
import threading
import types
from pathlib import Path
from typing import Iterator, List

import pytest

from triplit_sync import DEMO_SCHEMA, HttpClient, ProtocolError, Rows, TriplitConnectionError, \
    TriplitTimeoutError, mint_token
from triplit_sync.testing import _install
from triplit_sync.wire.messages import ErrorMessage


# --------------------------------------------------------------------------- a first start that talks

def test_npm_meter_reports_downloads_and_the_native_build() -> None:
    said: List[str] = []
    clock = iter(float(t) for t in range(0, 1000, 3))
    meter = _install._NpmMeter(271, said.append, clock=lambda: next(clock))
    for _ in range(10):
        meter.feed("npm http fetch GET 200 https://registry.npmjs.org/hono 12ms (cache hit)\n")
    meter.feed("> better-sqlite3@12.11.1 install\n")
    for _ in range(10):  # the timer's calls while the compiler prints nothing
        meter.tick()
    assert any("downloads so far" in line for line in said), said
    assert any("building better-sqlite3 from source" in line and "minute" in line for line in said), said
    assert any("still on better-sqlite3" in line for line in said), said
    assert len(said) < 15  # a few lines, not npm's hundreds


def test_a_first_install_says_what_it_installs_where(tmp_path: Path) -> None:
    # A stand-in for npm: prints like `npm ci --loglevel=http` and makes the folder it would.
    fake_npm = tmp_path / "npm"
    fake_npm.write_text("#!/bin/sh\necho 'npm http fetch GET 200 https://registry.npmjs.org/x 1ms'\n"
                        "echo '> better-sqlite3@12.11.1 install'\nmkdir node_modules\n")
    fake_npm.chmod(0o755)
    said: List[str] = []
    target = tmp_path / "cache" / "server-x"
    _install._npm_ci(str(fake_npm), sys.executable, _install.SERVER_SOURCE, target, "the Triplit server",
                     said.append)
    assert (target / "node_modules").is_dir() and (target / _install._INSTALLED_MARKER).exists()
    assert said[0].startswith("first run: installing the Triplit server (") and str(target) in said[0]
    assert any("building better-sqlite3" in line for line in said)
    assert said[-1].startswith("installed the Triplit server in ")


def test_the_server_install_no_longer_lists_the_js_client() -> None:
    server = json.loads((_install.SERVER_SOURCE / "package.json").read_text())
    client = json.loads((_install.JS_CLIENT_SOURCE / "package.json").read_text())
    assert "@triplit/client" not in server["dependencies"]
    assert client["dependencies"] == {"@triplit/client": "1.0.50"}
    for source in (_install.SERVER_SOURCE, _install.JS_CLIENT_SOURCE):
        lock = json.loads((source / "package-lock.json").read_text())
        assert lock["packages"][""]["dependencies"] == json.loads((source / "package.json").read_text())[
            "dependencies"]
    assert _install._install_key(_install.SERVER_SOURCE) != _install._install_key(_install.JS_CLIENT_SOURCE)


def test_demo_schema_and_mint_token_are_public() -> None:
    assert Path(DEMO_SCHEMA).is_file() and "todos" in json.loads(Path(DEMO_SCHEMA).read_text())["collections"]
    from triplit_sync.testing import mint_token as testing_mint
    assert testing_mint is mint_token


# --------------------------------------------------------------------------- errors that teach

def test_a_serialization_rejection_says_to_pass_the_schema() -> None:
    msg = ErrorMessage.from_payload({"messageType": "CHANGES", "error": {
        "name": "DBSerializationError", "status": 400,
        "message": "There was an error serializing an input | Context: Property created_at is invalid"}})
    error = msg.to_exception()
    assert error.status == 400 and "Property created_at is invalid" in error.message
    assert "schema=" in error.message and "HttpClient(url, service_token).schema()" in error.message
    other = ErrorMessage.from_payload({"messageType": "CHANGES", "error": {
        "name": "WritePermissionError", "status": 403, "message": "no"}}).to_exception()
    assert "schema=" not in other.message


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = {"/fetch": b'{"not": "a list"}', "/stats": b"<html>proxy</html>"}.get(self.path, b"{}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def odd_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_every_http_error_has_a_status(odd_server: str) -> None:
    token = mint_token("s", token_type="secret")
    with HttpClient(odd_server, token) as http:
        with pytest.raises(ProtocolError) as garbled:
            http.fetch({"collectionName": "todos"})
        assert garbled.value.status == 502
        with pytest.raises(ProtocolError) as not_json:
            http.stats()
        assert not_json.value.status == 502
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with HttpClient(f"http://127.0.0.1:{closed_port}", token) as http:
        with pytest.raises(TriplitConnectionError) as unreachable:
            http.fetch({"collectionName": "todos"})
        assert unreachable.value.status == 503
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with HttpClient(f"http://127.0.0.1:{silent.getsockname()[1]}", token) as http:
            with pytest.raises(TriplitTimeoutError) as timed_out:
                http.fetch({"collectionName": "todos"}, timeout=0.3)
            assert timed_out.value.status == 504


# --------------------------------------------------------------------------- notebooks

ROWS = Rows([
    {"id": "t1", "text": "<b>milk</b>", "completed": False,
     "created_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), "tags": {"b", "a"}},
    {"text": "no id here", "extra": None, "id": "t2"},
])


def test_rows_are_a_list_that_jupyter_draws_as_a_table() -> None:
    assert isinstance(ROWS, list) and ROWS == [dict(r) for r in ROWS] and json.dumps(ROWS[1:])
    page = ROWS._repr_html_()
    assert page.startswith("<table>") and "<th>id</th><th>text</th>" in page
    assert "&lt;b&gt;milk&lt;/b&gt;" in page and "<b>milk" not in page  # values are escaped
    assert "2026-01-02 03:04:05.000+00:00" in page and "{a, b}" in page
    assert "2 rows" in page
    many = Rows({"id": str(i)} for i in range(120))._repr_html_()
    assert many.count("<tr>") == 51 and "70 more rows" in many  # header + 50
    assert "0 rows" in Rows()._repr_html_()


def test_to_pandas_uses_pandas_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    made = {}
    fake = types.ModuleType("pandas")
    fake.DataFrame = lambda records, columns: made.update(records=records, columns=columns) or "frame"  # type: ignore
    monkeypatch.setitem(sys.modules, "pandas", fake)
    assert ROWS.to_pandas() == "frame"
    assert made["columns"] == ["id", "text", "completed", "created_at", "tags", "extra"]
    assert made["records"][0]["text"] == "<b>milk</b>"
    monkeypatch.setitem(sys.modules, "pandas", None)  # not installed
    with pytest.raises(ImportError, match=r"triplit_sync\[pandas\]"):
        ROWS.to_pandas()


def test_under_pytest_install_progress_reaches_the_terminal_despite_capture(tmp_path: Path) -> None:
    import os
    import subprocess

    (tmp_path / "conftest.py").write_text('pytest_plugins = ["triplit_sync.pytest_plugin"]\n')
    (tmp_path / "test_x.py").write_text(
        "from triplit_sync.testing import _install\n\n"
        "def test_x():\n    _install.stderr_progress('first run: installing (a stand-in line)')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "triplit_sync: first run: installing (a stand-in line)" in proc.stdout  # though the test's output is captured
