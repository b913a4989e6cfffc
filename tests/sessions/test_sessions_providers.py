"""Sessions with tokens of identity providers against the real server: RS256 tokens verified with
the server's external key, Triplit claims under an Auth0 namespace (``claims_path``), Clerk and
Supabase shapes at the top level."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from tests.support.session import (
    SAMPLE_SCHEMA, ClientFactory, Events, WireSpy, client_factory, session_errors,
)
from triplit_sync import HttpClient
from triplit_sync.errors import SessionRolesMismatchError, TokenDecodingError, TriplitError
from triplit_sync.testing import (
    KeyPair, TriplitTestServer, auth0_claims, clerk_claims, generate_key_pair, supabase_claims,
)
from triplit_sync.transport.websocket import ConnectionStatus
from triplit_sync.wire.messages import UpdateToken

NAMESPACE = "https://triplit/claims"


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    yield from client_factory()


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return generate_key_pair("RS256")


@pytest.fixture(scope="module")
def auth0(keys: KeyPair) -> Iterator[TriplitTestServer]:
    """A server that reads external tokens' claims under the Auth0 namespace."""
    with TriplitTestServer(SAMPLE_SCHEMA, claims_path=NAMESPACE, external_key=keys) as server:
        status, body = server.post("bulk-insert", {"messages": [
            {"id": "m-alice", "text": "for alice", "author_id": "carol", "to": "auth0|alice"},
            {"id": "m-bob", "text": "for bob", "author_id": "carol", "to": "auth0|bob"},
        ]})
        assert status == 200, body
        yield server


def _auth0_token(server: TriplitTestServer, user: str, expires_in: float = 600, **custom: str) -> str:
    return server.external_token(auth0_claims(f"auth0|{user}", custom, namespace=NAMESPACE),
                                 expires_in=expires_in)


def test_an_auth0_token_with_namespaced_claims_connects_with_its_roles_and_permissions(
        auth0: TriplitTestServer, clients: ClientFactory) -> None:
    token = _auth0_token(auth0, "alice")
    client = clients(auth0.url, token, schema=SAMPLE_SCHEMA, claims_path=NAMESPACE)
    errors = session_errors(client)
    info = client.session
    assert info is not None
    assert info.claims == {"sub": "auth0|alice"}  # what the server reads, not the whole token
    assert info.roles == {"user": {"userId": "auth0|alice"}}
    assert info.expires_at is not None and info.expires_at.timestamp() > time.time() + 500  # top-level exp
    assert client.wait_connected(10)

    # The server's permissions see the namespaced claims: $token.sub is auth0|alice.
    rows = client.fetch(client.query("messages"), policy="remote-first")
    assert [r["id"] for r in rows] == ["m-alice"]
    # And so does local evaluation: $session / $token come from the same claims.
    local = client.fetch(client.query("messages").where("to", "=", "$session.sub"), policy="local-only")
    assert [r["id"] for r in local] == ["m-alice"]
    assert [r["id"] for r in client.fetch(client.query("messages").where("to", "=", "$token.sub"),
                                          policy="local-only")] == ["m-alice"]

    # Writes: the user role's $role.userId is the namespaced sub.
    failures = Events()
    client.on_sync_error(failures.recorder("write_error"))
    client.insert("todos", {"id": "t-alice", "text": "mine", "owner": "auth0|alice"})
    client.wait_for_sync(10)
    client.insert("todos", {"id": "t-bob", "text": "not mine", "owner": "auth0|bob"})
    failures.wait_count("write_error", 1, timeout=10)
    status, stored = auth0.post("fetch", {"query": {"collectionName": "todos"}})
    assert status == 200 and [d["id"] for d in stored] == ["t-alice"]
    assert errors.items == []

    # HttpClient reads the same claims.
    assert client.http.claims == {"sub": "auth0|alice"}
    assert [d["id"] for d in client.http.fetch(client.query("messages"))] == ["m-alice"]


def test_a_namespaced_token_refreshes_on_the_live_connection(
        auth0: TriplitTestServer, clients: ClientFactory) -> None:
    calls = Events()

    def handler() -> str:
        calls.add("refresh")
        return _auth0_token(auth0, "alice", expires_in=600)

    first = _auth0_token(auth0, "alice", expires_in=3)
    client = clients(auth0.url, first, schema=SAMPLE_SCHEMA, claims_path=NAMESPACE, refresh_handler=handler)
    errors = session_errors(client)
    spy = WireSpy(client)
    assert client.wait_connected(10)
    calls.wait_count("refresh", 1, timeout=10)  # 1 s before the top-level exp
    spy.wait_sent("UPDATE_TOKEN", 1)
    info = client.session
    assert info is not None and info.expires_at is not None and info.expires_at.timestamp() > time.time() + 500
    # Past the first token's exp the connection is still the same one, and no error came.
    assert not errors.wait_for(lambda: bool(errors.items), timeout=3.0)
    assert client._transport.is_ready and len(calls.of("refresh")) == 1
    assert [r["id"] for r in client.fetch(client.query("messages"), policy="remote-first")] == ["m-alice"]


def test_another_users_token_is_a_roles_mismatch_on_both_sides(
        auth0: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(auth0.url, _auth0_token(auth0, "alice"), schema=SAMPLE_SCHEMA, claims_path=NAMESPACE)
    errors = session_errors(client)
    assert client.wait_connected(10)
    bob = _auth0_token(auth0, "bob")
    with pytest.raises(SessionRolesMismatchError):
        client.update_session_token(bob)  # the client's check reads the namespaced claims too
    # Same user, an unrelated extra claim: the same roles, accepted.
    client.update_session_token(_auth0_token(auth0, "alice", plan="pro"))
    assert client._transport.is_ready
    # Past the client's check, the server says it too.
    assert client._transport.send(UpdateToken(bob))
    got = errors.wait_count("session_error", 1, timeout=10)
    assert got[0][1] == "ROLES_MISMATCH" and got[0][2] == "triplit-callbacks"


def test_token_expired_reaches_on_session_error_within_two_seconds_though_the_server_never_sends_it(
        auth0: TriplitTestServer, clients: ClientFactory) -> None:
    token = _auth0_token(auth0, "alice", expires_in=2)
    client = clients(auth0.url, token, schema=SAMPLE_SCHEMA, claims_path=NAMESPACE)  # pings every 15 s
    errors = session_errors(client)
    assert client.wait_connected(10)
    info = client.session
    assert info is not None and info.expires_at is not None
    exp = info.expires_at.timestamp()
    got = errors.wait_count("session_error", 1, timeout=10)
    assert got[0][1] == "TOKEN_EXPIRED"
    assert 0 <= got[0][3] - exp <= 2.0, got[0][3] - exp
    assert errors.values("session_error") == ["TOKEN_EXPIRED"]
    assert client.connection_status is ConnectionStatus.CLOSED


def test_a_token_without_claims_at_the_path_is_refused_at_the_call(
        auth0: TriplitTestServer, clients: ClientFactory) -> None:
    plain = auth0.external_token({"sub": "auth0|alice"}, expires_in=600)  # nothing under the namespace
    with pytest.raises(TokenDecodingError, match="claims_path") as caught:
        clients(auth0.url, plain, claims_path=NAMESPACE)
    assert plain not in str(caught.value)
    with HttpClient(auth0.url, plain, claims_path=NAMESPACE) as http:
        with pytest.raises(TokenDecodingError, match="claims_path"):
            http.fetch("messages")
    # The server's own tokens have their claims at the top, path or not.
    service = clients(auth0.url, auth0.service_token(), claims_path=NAMESPACE)
    assert service.wait_connected(10)
    assert len(service.fetch(service.query("messages"), policy="remote-first")) == 2
    with pytest.raises(ValueError, match="claims_path"):
        clients(auth0.url, plain, claims_path="a..b")


@pytest.mark.server
def test_a_clerk_token_keeps_its_claims_at_the_top(keys: KeyPair, clients: ClientFactory) -> None:
    with TriplitTestServer(SAMPLE_SCHEMA, external_key=keys) as server:
        clerk = server.external_token(clerk_claims("user_2abc", {"role": "admin"}), expires_in=600)
        client = clients(server.url, clerk, schema=SAMPLE_SCHEMA)
        info = client.session
        assert info is not None and info.roles == {"user": {"userId": "user_2abc"}, "admin": {}}
        assert client.wait_connected(10)
        client.insert("todos", {"id": "t-admin", "text": "admin may", "owner": "someone"})
        client.wait_for_sync(10)
        # A token signed with the internal secret does not pass for an external one.
        forged = server.token(clerk_claims("user_2abc"), expires_in=600)
        errors = Events()
        other = clients(server.url, forged, on_session_error=errors.recorder("session_error"))
        assert errors.wait_count("session_error")[0][1] == "UNAUTHORIZED"
        assert not other.wait_connected(0.2)


@pytest.mark.server
def test_a_supabase_es256_token_with_an_ec_key(clients: ClientFactory) -> None:
    # Supabase's asymmetric signing keys are ES256; @triplit/server 1.1.8 verifies them with an
    # EC public key PEM (its key import is named RS256 but takes the key's own type).
    pair = generate_key_pair("ES256")
    with TriplitTestServer(SAMPLE_SCHEMA, external_key=pair) as server:
        status, body = server.post("insert", {"collectionName": "todos", "entity": {
            "id": "t1", "text": "hello", "owner": "x", "completed": False, "created_at": "2026-01-01T00:00:00.000Z"}})
        assert status == 200, body
        supa = server.external_token(supabase_claims("0b7c-uuid", email="a@example.com"), expires_in=600)
        with HttpClient(server.url, supa) as http:
            claims = http.claims
            assert claims is not None
            assert (claims["role"], claims["aud"], claims["sub"]) == ("authenticated", "authenticated", "0b7c-uuid")
            assert [d["id"] for d in http.fetch("todos")] == ["t1"]
        client = clients(server.url, supa, schema=SAMPLE_SCHEMA)
        assert client.wait_connected(10)
        assert [r["id"] for r in client.fetch(client.query("todos"), policy="remote-first")] == ["t1"]
        # An RS256 token is not verified by the EC key.
        with HttpClient(server.url, generate_key_pair().sign(supabase_claims("u"), expires_in=60)) as http:
            with pytest.raises(TriplitError, match="signature"):
                http.fetch("todos")


def test_provider_claim_shapes() -> None:
    claims = auth0_claims("auth0|alice", {"role": "editor"}, namespace="https://app/t")
    assert claims["sub"] == "auth0|alice" and claims["https://app/t"] == {"sub": "auth0|alice", "role": "editor"}
    assert claims["iss"].startswith("https://") and isinstance(claims["aud"], list)
    with pytest.raises(ValueError, match="namespace"):
        auth0_claims("x", namespace="https://app.example.com/claims")  # a claims path splits on '.'
    assert clerk_claims("user_1")["sub"] == "user_1" and clerk_claims("user_1")["v"] == 2
    anon = supabase_claims("u", role="anon")
    assert anon["role"] == "anon" and anon["aud"] == "anon" and anon["is_anonymous"] is True
    pair = generate_key_pair("ES256")
    assert "PRIVATE" not in repr(pair) and pair.public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    from jose import jwt

    token = pair.sign({"sub": "a"}, expires_in=60)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": "test-key", "typ": "JWT"}
    assert jwt.decode(token, pair.public_pem, algorithms=["ES256"])["sub"] == "a"
    with pytest.raises(ValueError, match="private key"):
        from triplit_sync.testing import mint_token

        mint_token("shared-secret", {"sub": "a"}, algorithm="RS256")
