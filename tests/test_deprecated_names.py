"""Renamed calls (CHANGELOG "Deprecated"): the new names work, the old ones still work for one
release and warn with the new name at the caller's line; the one server_url rule of both clients."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Iterator

import pytest

from triplit_sync import HttpClient, TriplitClient
from triplit_sync.testing import TriplitTestServer, mint_token

pytest_plugins = ["tests.support.client_fixtures"]  # make_client

Make = Callable[..., TriplitClient]


@pytest.fixture
def service(triplit: TriplitTestServer) -> Iterator[HttpClient]:
    with HttpClient(triplit.url, triplit.service_token()) as http:
        yield http


def test_clear_server_empties_the_server(service: HttpClient) -> None:
    service.insert("todos", {"text": "x", "owner": "alice"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name does not warn
        service.clear_server()
    assert service.stats() == {"todos": 0, "messages": 0}
    assert service.schema() is not None  # full=False keeps the schema


def test_http_clear_still_works_and_warns(service: HttpClient) -> None:
    service.insert("todos", {"text": "x", "owner": "alice"})
    with pytest.warns(DeprecationWarning, match=r"clear_server\(\)") as record:
        service.clear()
    assert service.stats() == {"todos": 0, "messages": 0}
    assert record[0].filename == __file__  # points at the caller, not at http.py


def test_start_session_auto_connect_is_keyword_only(triplit: TriplitTestServer, make_client: Make) -> None:
    client = make_client(triplit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client.start_session(triplit.user_token("alice"), auto_connect=False)
    assert client.session is not None and client.connection_status.name == "CLOSED"
    client.connect()
    assert client.wait_connected(10)


def test_start_session_with_a_positional_bool_still_works_and_warns(triplit: TriplitTestServer,
                                                                    make_client: Make) -> None:
    client = make_client(triplit)
    with pytest.warns(DeprecationWarning, match="auto_connect=") as record:
        client.start_session(triplit.user_token("alice"), False)
    assert record[0].filename == __file__
    assert client.session is not None and client.connection_status.name == "CLOSED"  # False was honoured
    with pytest.warns(DeprecationWarning):
        client.start_session(triplit.user_token("bob"), True)
    assert client.wait_connected(10)


def test_start_session_refuses_two_auto_connects(make_client: Make) -> None:
    client = TriplitClient("http://127.0.0.1:9", storage="memory")
    try:
        token = mint_token("secret", sub="alice")
        with pytest.raises(TypeError, match="both"):
            client.start_session(token, False, auto_connect=False)
        with pytest.raises(TypeError, match="one positional"):
            client.start_session(token, False, True)
        assert client.session is None
    finally:
        client.close()


# ------------------------------------------------------------------ server_url: one rule


@pytest.mark.parametrize("given, read_as", [
    ("http://127.0.0.1:9", "http://127.0.0.1:9"),
    ("https://db.example.com/triplit", "https://db.example.com/triplit"),
    ("ws://127.0.0.1:9", "http://127.0.0.1:9"),
    ("WSS://db.example.com/triplit/", "https://db.example.com/triplit"),
])
def test_both_clients_read_server_url_alike(given: str, read_as: str) -> None:
    with HttpClient(given, "t.o.k") as http:
        assert http.server_url == read_as
    client = TriplitClient(given, storage="memory")
    try:
        assert client.server_url == read_as
    finally:
        client.close()


@pytest.mark.parametrize("url", ["ftp://h", "h:1", "http://", "wss://", "ws:/h"])
def test_both_clients_refuse_other_urls_naming_them(url: str) -> None:
    with pytest.raises(ValueError) as via_http:
        HttpClient(url, "t.o.k")
    with pytest.raises(ValueError) as via_client:
        TriplitClient(url, storage="memory")
    for error in (via_http.value, via_client.value):
        assert url in str(error) and "ws://" in str(error)


def test_a_ws_url_reaches_the_real_server(triplit: TriplitTestServer, make_client: Any) -> None:
    ws_url = "ws://" + triplit.url.split("://", 1)[1]
    client = TriplitClient(ws_url, token=triplit.service_token(), storage="memory")
    try:
        assert client.wait_connected(10)
        assert client.http.healthcheck() is True
    finally:
        client.close()
    with HttpClient(ws_url) as http:
        assert http.healthcheck() is True
