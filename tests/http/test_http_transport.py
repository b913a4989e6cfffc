"""HttpClient arguments, JSON values, proxies, fork handling, and network failures.

Failures the real server cannot be made to produce use a bare socket (a closed port, a server
that accepts and never answers) or a few-line http.server (a redirect).
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator, List, Tuple

import pytest

from triplit_sync.http._transport import dumps
from triplit_sync.errors import (
    ClientClosedError,
    InvalidQueryError,
    NoActiveSessionError,
    SchemaValidationError,
    ServerError,
    TokenDecodingError,
    TriplitConnectionError,
    TriplitTimeoutError,
)
from triplit_sync.http import HttpClient
from triplit_sync.testing import TriplitTestServer

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"


@pytest.fixture
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections (the kernel does, from the backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("url", ["127.0.0.1:6543", "ftp://x", "http://", "http://h:99999", "http://h/?q=1",
                                 "http://user:pw@h"])
def test_bad_server_urls(url: str) -> None:
    with pytest.raises(ValueError, match="server_url"):
        HttpClient(url, TOKEN)


def test_server_url_forms() -> None:
    assert HttpClient("http://127.0.0.1:6543/", TOKEN).server_url == "http://127.0.0.1:6543"
    assert HttpClient("ws://127.0.0.1:6543", TOKEN).server_url == "http://127.0.0.1:6543"
    assert HttpClient("wss://db.example.com/triplit", TOKEN).server_url == "https://db.example.com/triplit"
    with pytest.raises(TypeError):
        HttpClient(None, TOKEN)  # type: ignore[arg-type]


@pytest.mark.parametrize("token", ["", "a b", "abc\n", "tök"])
def test_bad_tokens_never_appear_in_messages(token: str) -> None:
    with pytest.raises(TokenDecodingError) as info:
        HttpClient("http://127.0.0.1:1", token)
    assert isinstance(info.value, ValueError)
    if token.strip():
        assert token.strip() not in str(info.value)


def test_token_type_and_provider_results_are_checked(closed_port: int) -> None:
    with pytest.raises(TypeError):
        HttpClient("http://127.0.0.1:1", 123)  # type: ignore[arg-type]
    with HttpClient(f"http://127.0.0.1:{closed_port}", lambda: "bad token") as http:
        with pytest.raises(TokenDecodingError):
            http.fetch("todos")
    with HttpClient(f"http://127.0.0.1:{closed_port}") as http:
        with pytest.raises(NoActiveSessionError):
            http.fetch("todos")


@pytest.mark.parametrize("timeout", [0, -1, "5", True])
def test_bad_timeouts(timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        HttpClient("http://127.0.0.1:1", TOKEN, timeout=timeout)


def test_schema_argument_forms() -> None:
    with pytest.raises(TypeError, match="Schema"):
        HttpClient("http://127.0.0.1:1", TOKEN, schema=["not", "a", "schema"])
    with pytest.raises(SchemaValidationError):
        HttpClient("http://127.0.0.1:1", TOKEN, schema={"no": "collections"})
    http = HttpClient("http://127.0.0.1:1", TOKEN, schema={"collections": {}})  # the JSON form
    assert "with schema" in repr(http)
    http.close()


def test_bad_arguments_raise_before_sending(closed_port: int) -> None:
    # The port is closed: reaching the network would raise TriplitConnectionError instead.
    with HttpClient(f"http://127.0.0.1:{closed_port}", TOKEN) as http:
        with pytest.raises(InvalidQueryError):
            http.fetch({"where": []})
        with pytest.raises(InvalidQueryError):
            http.fetch(42)
        with pytest.raises(InvalidQueryError):
            http.fetch("")
        with pytest.raises(ValueError):
            http.fetch_by_id("todos", "")
        with pytest.raises(TypeError):
            http.insert("todos", ["not", "a", "dict"])  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            http.insert("", {})
        with pytest.raises(TypeError):
            http.bulk_insert({"todos": {"id": "x"}})  # type: ignore[dict-item]
        with pytest.raises(TypeError):
            http.bulk_insert({"todos": [1]})  # type: ignore[list-item]
        with pytest.raises(TypeError):
            http.apply_changes({"todos": {"sets": [["x", {}]], "deletes": set()}})
        with pytest.raises(TypeError, match="object"):
            http.insert("todos", {"x": object()})


def test_repr_names_the_url_and_never_the_token() -> None:
    http = HttpClient("http://127.0.0.1:1", TOKEN)
    assert repr(http) == "<HttpClient http://127.0.0.1:1>"
    http.close()
    assert TOKEN not in repr(http) and "closed" in repr(http)


# ---------------------------------------------------------------------------------- JSON values


def test_python_values_become_the_forms_the_server_reads() -> None:
    tz = timezone(timedelta(hours=2))
    out = json.loads(dumps({"naive": datetime(2024, 1, 2, 3, 4, 5, 678901),
                            "aware": datetime(2024, 1, 2, 3, 4, 5, tzinfo=tz),
                            "day": date(2024, 1, 2), "set": {"a"}, "frozen": frozenset([1]), "tuple": (1, 2)},
                           "x"))
    assert out == {"naive": "2024-01-02T03:04:05.678Z", "aware": "2024-01-02T01:04:05.000Z",
                   "day": "2024-01-02T00:00:00.000Z", "set": ["a"], "frozen": [1], "tuple": [1, 2]}
    with pytest.raises(TypeError, match="the thing cannot be sent as JSON"):
        dumps({"x": object()}, "the thing")


# ---------------------------------------------------------------------------------- network


def test_connection_refused_names_the_url_not_the_token(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    with HttpClient(url, TOKEN) as http:
        with pytest.raises(TriplitConnectionError) as info:
            http.fetch("todos")
        assert f"{url}/fetch" in str(info.value)
        assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
        assert isinstance(info.value, ConnectionError)
        assert http.healthcheck() is False


def test_a_server_that_never_answers_times_out(silent_server: int) -> None:
    with HttpClient(f"http://127.0.0.1:{silent_server}", TOKEN, timeout=0.3) as http:
        with pytest.raises(TriplitTimeoutError) as info:
            http.fetch("todos")
        assert isinstance(info.value, TimeoutError)
        assert "timed out" in str(info.value) and TOKEN not in str(info.value)
        with pytest.raises(TriplitTimeoutError, match="0.2"):
            http.bulk_insert({"todos": []}, timeout=0.2)  # a per-call timeout
        assert http.healthcheck(timeout=0.1) is False


class _Redirect(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(301)
        self.send_header("Location", "https://elsewhere.example/fetch")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def redirecting_server() -> Iterator[Tuple[str, http.server.HTTPServer]]:
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Redirect)
    th = threading.Thread(target=srv.serve_forever, name="redirect-server", daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    finally:
        srv.shutdown()
        srv.server_close()
        th.join(timeout=10)


def test_a_redirect_is_an_error_that_says_where(redirecting_server: Tuple[str, Any]) -> None:
    url, _ = redirecting_server
    with HttpClient(url, TOKEN) as http:
        with pytest.raises(ServerError) as info:
            http.fetch("todos")
    assert info.value.status == 301
    assert "https://elsewhere.example/fetch" in str(info.value)


def test_environment_proxies_do_not_capture_loopback(
        triplit: TriplitTestServer, closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    dead_proxy = f"http://127.0.0.1:{closed_port}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with HttpClient(triplit.url, triplit.service_token()) as http:
        assert http.fetch("todos") == []
    with HttpClient(triplit.url, triplit.service_token(), trust_env=True) as proxied:
        with pytest.raises(TriplitConnectionError):  # the proxy is honoured when asked for
            proxied.fetch("todos")


def test_a_forked_child_gets_its_own_connection_pool(triplit: TriplitTestServer) -> None:
    with HttpClient(triplit.url, triplit.service_token()) as http:
        assert http.fetch("todos") == []
        parent_pool = http._transport._client
        http._transport._pid = -1  # what os.getpid() looks like from a forked child
        assert http.fetch("todos") == []
        assert http._transport._client is not parent_pool
        assert not parent_pool.is_closed  # the parent's sockets are left alone
        parent_pool.close()


def test_close_while_other_threads_use_the_client(triplit: TriplitTestServer) -> None:
    http = HttpClient(triplit.url, triplit.service_token())
    started = threading.Event()
    outcomes: List[BaseException] = []

    def loop() -> None:
        started.set()
        try:
            for _ in range(10_000):
                http.fetch("todos")
        except BaseException as exc:  # reported below
            outcomes.append(exc)

    th = threading.Thread(target=loop, name="http-closer-victim")
    th.start()
    assert started.wait(10)
    http.close()
    th.join(timeout=30)
    assert not th.is_alive()
    assert len(outcomes) == 1, outcomes
    assert isinstance(outcomes[0], (ClientClosedError, TriplitConnectionError)), outcomes
