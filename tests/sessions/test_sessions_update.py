"""update_session_token against the real server: checks at the call, UPDATE_TOKEN, next connect."""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterator, List, Optional

import pytest
from jose import jwt

from tests.support.session import (
    SAMPLE_SCHEMA,
    ClientFactory,
    WireSpy,
    client_factory,
    session_errors,
)
from triplit_sync.errors import (
    NoActiveSessionError,
    SessionRolesMismatchError,
    TokenDecodingError,
    TokenExpiredError,
    TriplitError,
)
from triplit_sync.testing import TriplitTestServer, mint_token
from triplit_sync.transport.websocket import ConnectionStatus
from triplit_sync.wire.messages import Ping, UpdateToken


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    yield from client_factory()


def test_update_session_token_refuses_bad_tokens_at_the_call(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url, schema=SAMPLE_SCHEMA)
    with pytest.raises(NoActiveSessionError):
        client.update_session_token(triplit.user_token("alice"))
    alice = triplit.user_token("alice", expires_in=600)
    client.start_session(alice, auto_connect=False)
    expired = triplit.user_token("alice", expires_in=-30)
    bob = triplit.user_token("bob")
    cases = [("not.a.jwt", TokenDecodingError), ("", TokenDecodingError), (expired, TokenExpiredError),
             (bob, SessionRolesMismatchError), (triplit.anon_token(), SessionRolesMismatchError)]
    for token, error in cases:
        with pytest.raises(error) as e:
            client.update_session_token(token)
        assert isinstance(e.value, TriplitError)
        assert not token or token not in str(e.value)
    assert client.session is not None and client.session.claims["exp"] == jwt.get_unverified_claims(alice)["exp"]
    # Same roles, other claims: accepted.
    client.update_session_token(triplit.user_token("alice", expires_in=900, plan="pro"))
    assert client.session is not None and client.session.claims["plan"] == "pro"


def test_roles_are_checked_with_the_default_roles_without_a_schema(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url, triplit.user_token("alice"), auto_connect=False)
    assert client.session is not None and client.session.roles == {"authenticated": {"sub": "alice"}}
    with pytest.raises(SessionRolesMismatchError) as e:
        client.update_session_token(triplit.user_token("bob"))
    assert "authenticated" in str(e.value)
    with pytest.raises(SessionRolesMismatchError):
        client.update_session_token(triplit.anon_token())
    client.update_session_token(triplit.user_token("alice", extra=1))
    anon = clients(triplit.url, triplit.anon_token(), auto_connect=False)
    assert anon.session is not None and anon.session.roles == {"anonymous": {}}
    anon.update_session_token(triplit.anon_token())
    with pytest.raises(SessionRolesMismatchError):
        anon.update_session_token(triplit.user_token("alice"))


def test_update_on_a_live_socket_moves_the_servers_expiry(triplit: TriplitTestServer, clients: ClientFactory) -> None:
    short = triplit.user_token("alice", expires_in=2)
    client = clients(triplit.url, short, auto_connect=False)
    errors = session_errors(client)
    spy = WireSpy(client)
    client.connect()
    assert client.wait_connected(10)
    client_id = client._transport.client_id
    client.update_session_token(triplit.user_token("alice", expires_in=600))
    sent = spy.wait_sent("UPDATE_TOKEN")
    assert jwt.get_unverified_claims(sent[0].token)["exp"] > time.time() + 500  # type: ignore[attr-defined]
    # Keep messages crossing the socket until well past the old exp: the server checks the
    # expiry on every one of them, so each PONG proves it holds the new token.
    old_exp = jwt.get_unverified_claims(short)["exp"]
    pongs = 0
    while time.time() < old_exp + 1.0:
        assert client._transport.send(Ping(int(time.time() * 1000)))
        pongs += 1
        spy.wait_received("PONG", pongs, timeout=5)
    assert client._transport.is_ready and client._transport.client_id == client_id
    client._dispatcher.flush(2)
    assert errors.items == []


def test_an_update_while_disconnected_is_used_at_the_next_connect(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    # A forged token (bad signature) would be refused at connect: only the update can make it work.
    forged = mint_token("wrong-secret", sub="alice")
    client = clients(triplit.url, forged, auto_connect=False)
    errors = session_errors(client)
    spy = WireSpy(client)
    good = triplit.user_token("alice", expires_in=600)
    client.update_session_token(good)
    assert spy.events.items == []  # nothing to send it on
    client.connect()
    assert client.wait_connected(10)
    assert spy.sent("UPDATE_TOKEN") == []  # it was in the URL, not sent again
    client._dispatcher.flush(2)
    assert errors.items == []


def test_a_roles_mismatch_close_from_the_server_reaches_on_session_error(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url, triplit.user_token("alice"))
    errors = session_errors(client)
    assert client.wait_connected(10)
    # The client refuses this at the call; a raw frame makes the server judge it.
    assert client._transport.send(UpdateToken(triplit.user_token("bob")))
    got = errors.wait_count("session_error")
    assert [v for _, v, _, _ in got] == ["ROLES_MISMATCH"]
    assert got[0][2] == "triplit-callbacks"
    assert client.connection_status is ConnectionStatus.CLOSED
    assert not client.wait_connected(0.5)


@pytest.mark.parametrize("how", ["forged", "garbage"])
def test_a_token_the_server_refuses_in_update_token_is_unauthorized(
        triplit: TriplitTestServer, clients: ClientFactory, how: str) -> None:
    client = clients(triplit.url, triplit.user_token("alice"))
    errors = session_errors(client)
    assert client.wait_connected(10)
    if how == "forged":  # decodable, same roles: the client can't tell, the server can
        client.update_session_token(mint_token("wrong-secret", sub="alice"))
    else:
        assert client._transport.send(UpdateToken("garbage"))
    got = errors.wait_count("session_error")
    assert [v for _, v, _, _ in got] == ["UNAUTHORIZED"]
    assert client.connection_status is ConnectionStatus.CLOSED


def test_a_token_updated_while_the_connection_opens_is_sent_once_ready(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url, triplit.user_token("alice", v=1), auto_connect=False)
    errors = session_errors(client)
    spy = WireSpy(client)
    provided, proceed = threading.Event(), threading.Event()
    provider = client._transport._token_provider

    def slow_provider() -> Optional[str]:
        token = provider()  # the URL is built from this one
        provided.set()
        proceed.wait(10)
        return token

    client._transport._token_provider = slow_provider  # type: ignore[method-assign]
    client.connect()
    assert provided.wait(10)
    client.update_session_token(triplit.user_token("alice", v=2))
    proceed.set()
    assert client.wait_connected(10)
    sent = spy.wait_sent("UPDATE_TOKEN")
    assert [jwt.get_unverified_claims(m.token)["v"] for m in sent] == [2]  # type: ignore[attr-defined]
    kinds = [(k, v.TYPE) for k, v, _, _ in spy.events.items]
    assert kinds.index(("received", "READY")) < kinds.index(("sent", "UPDATE_TOKEN"))
    assert errors.items == []


def test_tokens_never_reach_logs_reprs_or_errors(
        triplit: TriplitTestServer, clients: ClientFactory, caplog: pytest.LogCaptureFixture) -> None:
    tokens = [triplit.user_token("alice", expires_in=600), triplit.user_token("alice", expires_in=900),
              mint_token("wrong-secret", sub="alice"), triplit.user_token("bob")]
    texts: List[str] = []
    with caplog.at_level(logging.DEBUG):
        failing = [RuntimeError("down")]

        def handler() -> str:
            if failing:
                raise failing.pop()
            return tokens[1]

        client = clients(triplit.url, tokens[0], refresh_handler=handler, refresh_interval=0.05)
        errors = session_errors(client)
        assert client.wait_connected(10)
        errors.wait_count("refresh_error")
        client.update_session_token(tokens[1])
        try:
            client.update_session_token(tokens[3])
        except SessionRolesMismatchError as e:
            texts.append(str(e))
        client._sessions.refresher.cancel()
        client.update_session_token(tokens[2])  # forged: the server closes with UNAUTHORIZED
        errors.wait_count("session_error")
        texts += [repr(client), repr(client.session), repr(client._session)]
    texts.append(caplog.text)
    for token in tokens:
        for text in texts:
            assert token not in text and token.split(".")[1] not in text
