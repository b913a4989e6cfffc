"""Starting sessions against the real server: constructor, auto_connect, start_session, connect."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.session import (
    SAMPLE_SCHEMA,
    ClientFactory,
    Events,
    WireSpy,
    client_factory,
    session_errors,
)
from triplit_sync.errors import NoActiveSessionError, TokenDecodingError, TokenExpiredError
from triplit_sync.testing import TriplitTestServer, mint_token
from triplit_sync.transport.websocket import ConnectionStatus


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    yield from client_factory()


def test_a_token_in_the_constructor_starts_a_session_and_connects(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    token = triplit.user_token("alice", expires_in=600)
    client = clients(triplit.url, token, schema=SAMPLE_SCHEMA)
    assert client.wait_connected(10)
    assert client.connection_status is ConnectionStatus.OPEN
    info = client.session
    assert info is not None and info.status == "OPEN"
    assert info.claims["sub"] == "alice"
    assert info.roles == {"user": {"userId": "alice"}}
    exp = info.claims["exp"]
    assert info.expires_at == dt.datetime.fromtimestamp(exp, dt.timezone.utc)
    assert token not in repr(client) and token not in repr(info)
    client.insert("todos", {"text": "hello", "owner": "alice", "completed": False})
    client.wait_for_sync(10)  # the server took a write under this session


def test_auto_connect_false_keeps_the_session_offline_until_connect(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url, triplit.user_token("alice"), auto_connect=False)
    assert client.session is not None
    assert client.connection_status is ConnectionStatus.CLOSED
    assert client._transport.status is ConnectionStatus.UNINITIALIZED  # no socket was ever opened
    assert not client.wait_connected(0.2)
    client.connect()
    assert client.wait_connected(10)
    assert client.session is not None and client.session.status == "OPEN"


def test_without_a_token_the_client_works_locally_then_connects_on_start_session(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url, schema=SAMPLE_SCHEMA)
    assert client.session is None
    assert client.connection_status is ConnectionStatus.UNINITIALIZED
    with pytest.raises(NoActiveSessionError):
        client.connect()
    row = client.insert("todos", {"text": "offline", "owner": "alice", "completed": False})
    assert [r["id"] for r in client.fetch(client.query("todos"))] == [row["id"]]  # local, no waiting
    client.start_session(triplit.user_token("alice"))
    assert client.wait_connected(10)
    client.wait_for_sync(10)  # the write made before any session went out with alice's session
    status, rows = triplit.post("fetch", {"query": {"collectionName": "todos"}})
    assert status == 200 and [r["id"] for r in rows] == [row["id"]]


def test_start_session_without_connecting_then_connect(triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url)
    client.start_session(triplit.user_token("alice"), auto_connect=False)
    assert client.session is not None and client.session.claims["sub"] == "alice"
    assert client.connection_status is ConnectionStatus.CLOSED
    assert client._transport.status is ConnectionStatus.UNINITIALIZED
    client.connect()
    assert client.wait_connected(10)


def test_start_session_refuses_bad_tokens_at_the_call_and_keeps_the_current_session(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    alice = triplit.user_token("alice")
    client = clients(triplit.url, alice)
    assert client.wait_connected(10)
    client_id = client._transport.client_id
    with pytest.raises(TokenDecodingError) as e:
        client.start_session("not-a-jwt")
    assert "not-a-jwt" not in str(e.value)
    expired = triplit.user_token("bob", expires_in=-30)
    with pytest.raises(TokenExpiredError) as e2:
        client.start_session(expired)
    assert expired not in str(e2.value)
    with pytest.raises(TypeError):
        client.start_session(triplit.user_token("bob"), refresh_handler="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        client.start_session(triplit.user_token("bob"), refresh_interval=5)
    assert client.session is not None and client.session.claims["sub"] == "alice"
    assert client._transport.client_id == client_id and client._transport.is_ready


def test_start_session_with_another_token_switches_the_connection(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url, triplit.user_token("alice"), schema=SAMPLE_SCHEMA)
    errors = session_errors(client)
    assert client.wait_connected(10)
    first = client._transport.client_id
    client.start_session(triplit.user_token("bob"))
    assert client.wait_connected(10)
    assert client._transport.client_id != first
    assert client.session is not None and client.session.roles == {"user": {"userId": "bob"}}
    client.insert("todos", {"text": "bob's", "owner": "bob", "completed": False})
    client.wait_for_sync(10)  # the server sees bob: a write owned by bob passes its permissions
    assert errors.items == []


def test_start_session_with_the_same_token_keeps_the_connection(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    token = triplit.user_token("alice")
    client = clients(triplit.url, token)
    assert client.wait_connected(10)
    first = client._transport.client_id
    client.start_session(token)
    assert client.wait_connected(10) and client._transport.client_id == first


def test_a_bad_signature_is_refused_by_the_server_not_the_client(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    forged = mint_token("wrong-secret", sub="alice")
    errors = Events()
    client = clients(triplit.url, forged, on_session_error=errors.recorder("session_error"))
    errors.wait_count("session_error")
    assert errors.values("session_error") == ["UNAUTHORIZED"]
    assert client.connection_status is ConnectionStatus.CLOSED


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_another_identity_does_not_resume_from_the_previous_ones_checkpoints(
        triplit: TriplitTestServer, clients: ClientFactory, tmp_path: Path, storage: str) -> None:
    status, _ = triplit.post("insert", {"collectionName": "todos", "entity": {
        "id": "t1", "text": "x", "completed": False, "owner": "carol", "created_at": "2025-01-01T00:00:00.000Z"}})
    assert status == 200
    client = clients(triplit.url, triplit.user_token("alice"), schema=SAMPLE_SCHEMA, storage=storage,
                     data_dir=tmp_path, name="who", auto_connect=False)
    spy = WireSpy(client)
    got = Events()
    client.subscribe(client.query("todos"), got.recorder("rows"))
    client.connect()
    assert got.wait_for(lambda: any(len(v) == 1 for v in got.values("rows")))
    assert client._engine.checkpoints()
    client.disconnect()
    client.connect()  # the same identity resumes: CONNECT_QUERY carries its checkpoint
    spy.wait_sent("CONNECT_QUERY", 2)
    assert spy.sent("CONNECT_QUERY")[1].state["timestamp"][0] > 0  # type: ignore[attr-defined]
    client.start_session(triplit.user_token("bob"), auto_connect=False)
    transport = client._transport
    assert client._engine.checkpoints() == {}
    client.connect()
    assert transport is client._transport
    sent = spy.wait_sent("CONNECT_QUERY", 3)
    state = sent[2].state  # type: ignore[attr-defined]
    assert state is None or state["timestamp"][0] == 0  # bob's server answer is not assumed
