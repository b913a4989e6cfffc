"""on_session_error against the real server: all four types, once each, then no reconnect."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any, Dict, Iterator, List

import pytest
from jose import jwt

from tests.support.session import (
    SAMPLE_SCHEMA,
    ClientFactory,
    Events,
    WireSpy,
    client_factory,
    ready_count,
)
from triplit_sync.client import TriplitClient
from triplit_sync.session import SessionErrorType
from triplit_sync.testing import TriplitTestServer, mint_token
from triplit_sync.transport.websocket import ConnectionStatus
from triplit_sync.wire.messages import UpdateToken


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    yield from client_factory()


def _incompatible_schema() -> Dict[str, Any]:
    schema = copy.deepcopy(json.loads(SAMPLE_SCHEMA.read_text()))
    schema["collections"]["todos"]["schema"]["properties"]["extra"] = {"type": "string", "config": {}}
    return schema


def _assert_once_and_stays_closed(client: TriplitClient, events: Events, expected: str) -> None:
    got = events.wait_count("session_error")
    readies = ready_count(client)
    # Long enough for a reconnect (first backoff 0.25 s) and a duplicate report to show up.
    assert not events.wait_for(lambda: len(events.of("session_error")) > 1, timeout=1.0)
    client._dispatcher.flush(2)
    assert [v for _, v, _, _ in events.of("session_error")] == [expected]
    kind, value, thread, _ = got[0]
    assert isinstance(value, SessionErrorType) and value == expected
    assert thread == "triplit-callbacks"
    assert client.connection_status is ConnectionStatus.CLOSED
    assert readies() == 0 and not client._transport.is_ready


def test_unauthorized_at_connect(triplit: TriplitTestServer, clients: ClientFactory) -> None:
    events = Events()
    client = clients(triplit.url, mint_token("wrong-secret", sub="alice"),
                     on_session_error=events.recorder("session_error"))
    _assert_once_and_stays_closed(client, events, "UNAUTHORIZED")
    assert client.session is not None  # the session stays; the app decides what to do


def test_token_expired_on_an_idle_client_within_two_seconds_of_exp(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    token = triplit.user_token("alice", expires_in=2)
    exp = jwt.get_unverified_claims(token)["exp"]
    events = Events()
    client = clients(triplit.url, token, on_session_error=events.recorder("session_error"))  # pings every 45 s
    assert client.wait_connected(10)
    got = events.wait_count("session_error", timeout=10)
    assert 0 <= got[0][3] - exp <= 2.0, got[0][3] - exp
    # The local give-up timer (exp + 1.5 s) must not report it a second time.
    client._sessions.expiry.join(5)
    _assert_once_and_stays_closed(client, events, "TOKEN_EXPIRED")


def test_roles_mismatch_from_the_server(triplit: TriplitTestServer, clients: ClientFactory) -> None:
    events = Events()
    client = clients(triplit.url, triplit.user_token("alice"), on_session_error=events.recorder("session_error"))
    assert client.wait_connected(10)
    assert client._transport.send(UpdateToken(triplit.user_token("bob")))
    _assert_once_and_stays_closed(client, events, "ROLES_MISMATCH")


def test_schema_mismatch_closes_the_socket(triplit: TriplitTestServer, clients: ClientFactory) -> None:
    events = Events()
    client = clients(triplit.url, triplit.service_token(), schema=_incompatible_schema(),
                     on_session_error=events.recorder("session_error"))
    _assert_once_and_stays_closed(client, events, "SCHEMA_MISMATCH")
    # The server leaves its side open; the client closed the socket itself.
    assert client._transport._conn is None or client._transport._conn.finished.is_set()


def test_a_compatible_schema_passes_the_handshake(triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url, triplit.service_token(), schema=SAMPLE_SCHEMA, auto_connect=False)
    spy = WireSpy(client)
    client.connect()
    assert client.wait_connected(10)
    assert client._transport.schema_hash is not None
    # The server either asked for the schema (first time) or knew the hash already.
    assert [m.TYPE for m in spy.events.values("received")][-1] == "READY"


@pytest.mark.parametrize("action", ["end_session", "start_session", "clear", "close"])
def test_the_callback_may_end_start_or_clear(triplit: TriplitTestServer, clients: ClientFactory,
                                             action: str) -> None:
    done = threading.Event()
    failures: List[BaseException] = []
    holder: List[TriplitClient] = []
    good = triplit.user_token("alice")

    def on_error(kind: SessionErrorType) -> None:
        client = holder[0]
        try:
            if action == "end_session":
                client.end_session()
            elif action == "start_session":
                client.start_session(good)
            elif action == "close":
                client.close()
            else:
                client.clear()
                client.end_session()
                client.start_session(good)
        except BaseException as e:  # pragma: no cover - reported below
            failures.append(e)
        done.set()

    client = clients(triplit.url, mint_token("wrong-secret", sub="alice"), auto_connect=False,
                     on_session_error=on_error)
    holder.append(client)
    client.insert("todos", {"text": "local", "owner": "alice", "completed": False})
    client.connect()
    assert done.wait(10) and failures == []
    if action == "close":
        assert client.closed
        return
    if action == "end_session":
        assert client.session is None and client.connection_status is ConnectionStatus.UNINITIALIZED
    else:
        assert client.wait_connected(10)
        assert client.session is not None and client.session.claims["sub"] == "alice"
    if action == "clear":
        assert client.pending_changes() == [] and client.fetch(client.query("todos"), "local-only") == []
