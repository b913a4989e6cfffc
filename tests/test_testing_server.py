"""The foundation: the real local server, token minting, the test helpers and `triplit-sync dev`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import unittest
from pathlib import Path
from typing import Dict, Optional

import pytest
from jose import jwt

from triplit_sync.testing import (
    TestServerError,
    TriplitServerMixin,
    TriplitTestServer,
    mint_token,
    shared_server,
)

from .conftest import SAMPLE_SCHEMA
from .support.session import default_sigint

REPO = Path(__file__).resolve().parent.parent


def _fetch_status(server: TriplitTestServer, token: str) -> int:
    status, _ = server.post("fetch", {"query": {"collectionName": "todos"}}, token=token)
    return status


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling another process's death: there is no event to wait on
    return True


# --------------------------------------------------------------------------- mint_token


def test_mint_token_claims() -> None:
    claims = jwt.get_unverified_claims(mint_token("s", {"x": 1}, sub="alice", expires_in=60))
    assert claims["sub"] == "alice" and claims["x"] == 1
    assert abs(claims["exp"] - (time.time() + 60)) < 5
    assert jwt.get_unverified_claims(mint_token("s", token_type="secret")) == {"x-triplit-token-type": "secret"}
    assert jwt.get_unverified_claims(mint_token("s", token_type="anon")) == {"x-triplit-token-type": "anon"}
    assert jwt.get_unverified_header(mint_token("s", algorithm="HS512"))["alg"] == "HS512"
    jwt.decode(mint_token("s", sub="a"), "s", algorithms=["HS256"])  # really signed with the secret


def test_mint_token_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="'admin'"):
        mint_token("s", token_type="admin")


# --------------------------------------------------------------------------- the server


def test_tokens_over_http(triplit: TriplitTestServer) -> None:
    """Service, anon and user tokens are accepted; bad ones get PROTOCOL.md §9's statuses."""
    assert _fetch_status(triplit, triplit.service_token()) == 200
    assert _fetch_status(triplit, triplit.anon_token()) == 200
    assert _fetch_status(triplit, triplit.user_token("alice")) == 200

    status, body = triplit.post("fetch", {"query": {"collectionName": "todos"}},
                                token=triplit.user_token("alice", expires_in=-10))
    assert (status, body["name"]) == (401, "InvalidTokenSignatureError")
    status, body = triplit.post("fetch", {"query": {"collectionName": "todos"}},
                                token=mint_token("wrong-secret", token_type="secret"))
    assert (status, body["name"]) == (401, "InvalidTokenSignatureError")
    status, body = triplit.post("fetch", {"query": {"collectionName": "todos"}}, token="not-a-jwt")
    assert (status, body["name"]) == (400, "InvalidTokenPayloadError")


def test_user_token_role_applies(triplit: TriplitTestServer) -> None:
    """The sample schema's `user` role lets alice insert her own todo but not bob's."""
    alice = triplit.user_token("alice")
    ok, _ = triplit.post("insert", {"collectionName": "todos", "entity": {"text": "a", "owner": "alice"}}, alice)
    denied, body = triplit.post("insert", {"collectionName": "todos", "entity": {"text": "b", "owner": "bob"}},
                                alice)
    assert ok == 200
    assert (denied, body["name"]) == (401, "WritePermissionError")


def test_reset_clears_data_keeps_schema(triplit: TriplitTestServer) -> None:
    triplit.post("insert", {"collectionName": "todos", "entity": {"text": "a", "owner": "x"}})
    triplit.reset()
    assert triplit.post("fetch", {"query": {"collectionName": "todos"}})[1] == []
    status, body = triplit.post("schema", {})
    assert status == 200 and "todos" in body["schema"]["collections"]


@pytest.mark.server
def test_start_stop_and_loopback_only() -> None:
    with TriplitTestServer() as server:
        pid = server._proc.pid  # type: ignore[union-attr]
        assert server.url.startswith("http://127.0.0.1:")
        status, body = server.post("schema", {})
        assert (status, body) == (200, {"type": "schemaless"})
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        ours = [line for line in listening.splitlines() if f"pid={pid}," in line]
        assert ours and all(f"127.0.0.1:{server.port}" in line for line in ours), ours
    assert _wait_dead(pid)


@pytest.mark.server
def test_restart_keeps_port_and_durable_data() -> None:
    with TriplitTestServer(SAMPLE_SCHEMA, storage="sqlite") as server:
        port = server.port
        status, inserted = server.post("insert", {"collectionName": "todos",
                                                  "entity": {"text": "kept", "owner": "alice"}})
        assert status == 200
        server.restart()
        assert server.port == port
        status, rows = server.post("fetch", {"query": {"collectionName": "todos"}})
        assert [r["id"] for r in rows] == [inserted["id"]]


@pytest.mark.server
def test_restart_memory_storage_loses_data() -> None:
    with TriplitTestServer(SAMPLE_SCHEMA) as server:
        server.post("insert", {"collectionName": "todos", "entity": {"text": "gone", "owner": "alice"}})
        server.restart()
        assert server.post("fetch", {"query": {"collectionName": "todos"}})[1] == []


def test_bad_arguments_raise_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'disk'"):
        TriplitTestServer(storage="disk")
    with pytest.raises(ValueError, match="nope.json"):
        TriplitTestServer(str(tmp_path / "nope.json"))
    with pytest.raises(ValueError, match="collections"):
        TriplitTestServer({"tables": {}})


@pytest.mark.server
def test_missing_node_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("TRIPLIT_SYNC_NODE", raising=False)
    monkeypatch.setenv("TRIPLIT_SYNC_CACHE_DIR", str(tmp_path / "cache"))  # force the install path
    with pytest.raises(TestServerError, match=r"`node` was not found on PATH.*install Node\.js"):
        TriplitTestServer().start()


@pytest.mark.server
def test_server_start_failure_reports_stderr(tmp_path: Path) -> None:
    bad = tmp_path / "schema.json"
    bad.write_text(json.dumps({"collections": {"t": {"schema": {"type": "nonsense"}}}}))
    server = TriplitTestServer(bad)
    with pytest.raises(TestServerError, match="did not start"):
        server.start()
    assert not server.running


_CHILD = textwrap.dedent(
    """
    import sys, time
    from triplit_sync.testing import TriplitTestServer
    server = TriplitTestServer()
    server.start()
    print(server._proc.pid, flush=True)
    mode = sys.argv[1]
    if mode == "raise":
        with server:
            raise RuntimeError("a failing test")
    elif mode == "exit":
        sys.exit(0)  # no stop(): the atexit hook must do it
    else:
        time.sleep(600)  # waits to be SIGKILLed
    """
)


@pytest.mark.server  # the server runs in a child process, out of the guard's sight
@pytest.mark.parametrize("mode", ["raise", "exit", "sigkill"])
def test_no_server_left_behind(mode: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", _CHILD, mode], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    server_pid = int(child.stdout.readline())
    if mode == "sigkill":
        child.kill()
    child.wait(30)
    assert _wait_dead(server_pid), f"server pid {server_pid} outlived its test process ({mode})"


@pytest.mark.server
def test_shared_server_is_shared() -> None:
    assert shared_server(SAMPLE_SCHEMA) is shared_server(str(SAMPLE_SCHEMA))


class _MixinCase(TriplitServerMixin, unittest.TestCase):
    triplit_schema = SAMPLE_SCHEMA

    def test_sees_empty_server(self) -> None:
        status, rows = self.triplit_server.post("fetch", {"query": {"collectionName": "todos"}})
        self.assertEqual((status, rows), (200, []))
        self.triplit_server.post("insert", {"collectionName": "todos", "entity": {"text": "x", "owner": "o"}})

    test_sees_empty_server_again = test_sees_empty_server


@pytest.mark.server
def test_unittest_mixin_resets_between_tests() -> None:
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(_MixinCase)
    result = unittest.TextTestRunner(stream=open(os.devnull, "w"), verbosity=0).run(suite)
    assert result.wasSuccessful() and result.testsRun == 2, result.failures + result.errors


_MixinCase.__test__ = False  # type: ignore[attr-defined]  # run only through the test above


# --------------------------------------------------------------------------- triplit-sync dev


def _read_dev_output(proc: "subprocess.Popen[str]") -> Dict[str, str]:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    text = "".join(lines)
    url = re.search(r"running at (http://127\.0\.0\.1:\d+)", text)
    tokens = re.findall(r"^  (ey[\w-]+\.[\w-]+\.[\w-]+)$", text, re.M)
    assert url and len(tokens) == 3, text
    return {"url": url.group(1), "service": tokens[0], "anon": tokens[1], "user": tokens[2]}


@pytest.mark.server  # the server runs in a child process, out of the guard's sight
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_dev_command_tokens_work_and_it_stops_cleanly(stop_signal: int) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "triplit_sync", "dev", "--port", "0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        info = _read_dev_output(proc)
        probe = TriplitTestServer()
        probe.port = int(info["url"].rsplit(":", 1)[1])
        for kind in ("service", "anon", "user"):
            assert _fetch_status(probe, info[kind]) == 200, kind
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "stopped" in out
        probe.port = probe.port
        with pytest.raises(OSError):
            _fetch_status(probe, info["service"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.server  # the server runs in a child process, out of the guard's sight
def test_dev_command_accepts_a_providers_key_and_claims_path(tmp_path: Path) -> None:
    from triplit_sync.testing import auth0_claims, generate_key_pair

    keys = generate_key_pair()
    key_file = tmp_path / "provider.pem"
    key_file.write_text(keys.public_pem)
    proc = subprocess.Popen([sys.executable, "-m", "triplit_sync", "dev", "--port", "0", "--claims-path",
                             "https://triplit/claims", "--external-key", str(key_file)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        info = _read_dev_output(proc)
        probe = TriplitTestServer()
        probe.port = int(info["url"].rsplit(":", 1)[1])
        assert _fetch_status(probe, info["service"]) == 200  # internal tokens work as before
        namespaced = keys.sign(auth0_claims("auth0|alice"), expires_in=60)
        assert _fetch_status(probe, namespaced) == 200
        flat = keys.sign({"sub": "auth0|alice"}, expires_in=60)  # nothing at the claims path
        assert _fetch_status(probe, flat) == 500
        assert _fetch_status(probe, mint_token(probe.secret, auth0_claims("auth0|alice"))) == 401
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    missing = subprocess.run([sys.executable, "-m", "triplit_sync", "dev", "--external-key",
                              str(tmp_path / "nope.pem")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "--external-key" in missing.stdout
