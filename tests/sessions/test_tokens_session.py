"""Token claims, role matching, session.json and the refresh timer, without a server."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest

from triplit_sync.errors import TokenDecodingError
from triplit_sync.session import SessionStore, TokenRefresher
from triplit_sync.session.tokens import (
    decode_claims,
    expires_at,
    identity_key,
    is_expired,
    match_roles,
    roles_equivalent,
)
from triplit_sync.testing import mint_token

SAMPLE_ROLES = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "sample-schema.json").read_text())["roles"]


def test_decode_claims_and_expiry() -> None:
    token = mint_token("s", sub="alice", expires_in=100)
    claims = decode_claims(token)
    assert claims["sub"] == "alice"
    assert expires_at(claims) == claims["exp"]
    assert not is_expired(claims)
    assert is_expired(claims, now=claims["exp"] + 1)
    assert expires_at({"sub": "x"}) is None and not is_expired({"sub": "x"})


@pytest.mark.parametrize("bad", ["", "abc", "abc.def.ghi", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig", 42, None])
def test_decode_claims_rejects_without_showing_the_token(bad: object) -> None:
    with pytest.raises(TokenDecodingError) as info:
        decode_claims(bad)
    if isinstance(bad, str) and bad:
        assert bad not in str(info.value)


def test_roles_default_and_schema() -> None:
    assert match_roles({"sub": "alice"}, None) == {"authenticated": {"sub": "alice"}}
    assert match_roles({"x-triplit-token-type": "anon"}, None) == {"anonymous": {}}
    assert match_roles({}, None) == {}
    assert match_roles({"sub": "bob", "role": "admin"}, SAMPLE_ROLES) == {"user": {"userId": "bob"}, "admin": {}}
    assert match_roles({"sub": "bob", "role": "viewer"}, SAMPLE_ROLES) == {"user": {"userId": "bob"}}
    nested = {"r": {"match": {"app": {"tier": "$tier", "on": True}}}}
    assert match_roles({"app": {"tier": 3, "on": True}}, nested) == {"r": {"tier": 3}}
    assert match_roles({"app": {"tier": 3, "on": 1}}, nested) == {}  # JS ===: 1 is not true


def test_roles_equivalence_follows_the_server_rule() -> None:
    alice = match_roles({"sub": "alice", "exp": 1}, SAMPLE_ROLES)
    alice2 = match_roles({"sub": "alice", "extra": "claim"}, SAMPLE_ROLES)
    bob = match_roles({"sub": "bob"}, SAMPLE_ROLES)
    assert roles_equivalent(alice, alice2)
    assert not roles_equivalent(alice, bob)
    assert roles_equivalent({}, None)
    assert not roles_equivalent(alice, match_roles({"sub": "alice", "role": "admin"}, SAMPLE_ROLES))


def test_identity_key_is_stable_and_token_free() -> None:
    a1 = decode_claims(mint_token("s", sub="alice", expires_in=10))
    a2 = decode_claims(mint_token("s", {"x": 1}, sub="alice", expires_in=500))
    b = decode_claims(mint_token("s", sub="bob"))
    key = identity_key(a1, match_roles(a1, None))
    assert key == identity_key(a2, match_roles(a2, None))
    assert key != identity_key(b, match_roles(b, None))
    assert "alice" not in key
    service = decode_claims(mint_token("s", token_type="secret"))
    assert identity_key(service, {}).startswith("secret:")


# --------------------------------------------------------------------------- session.json


def test_session_store_atomic_and_private(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    assert store.load() is None
    store.save({"server_url": "http://x", "token": "t", "checkpoints": {"q": {"timestamp": [1, 0, "server"]}}})
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.load()["checkpoints"] == {"q": {"timestamp": [1, 0, "server"]}}  # type: ignore[index]
    assert [p.name for p in tmp_path.iterdir()] == ["session.json"]  # no temp file left
    store.delete()
    assert store.load() is None


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"version": 99}', b'{"version": 1, "checkpoints": 3}'])
def test_corrupt_session_file_is_moved_aside(tmp_path: Path, content: bytes,
                                            caplog: pytest.LogCaptureFixture) -> None:
    store = SessionStore(tmp_path)
    store.path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="triplit_sync.session"):
        assert store.load() is None
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("session.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content
    assert not store.path.exists()
    assert "moved it to" in caplog.text


# --------------------------------------------------------------------------- the refresh timer


class _Recorder:
    def __init__(self) -> None:
        self.calls: List[float] = []
        self.applied: List[str] = []
        self.failures: List[BaseException] = []
        self.event = threading.Event()
        self.lock = threading.Lock()

    def wait_calls(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.calls) >= n:
                    return
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(self.calls)} of {n} handler calls"
            self.event.wait(remaining)
            self.event.clear()


def test_refresher_calls_one_second_before_exp() -> None:
    rec = _Recorder()
    exp = time.time() + 2.5

    def handler() -> str:
        with rec.lock:
            rec.calls.append(time.time())
        rec.event.set()
        return "new"

    refresher = TokenRefresher(rec.applied.append, rec.failures.append)
    refresher.schedule(handler, None, exp)
    rec.wait_calls(1)
    refresher.cancel()
    assert 0.7 <= exp - rec.calls[0] <= 1.3
    assert rec.applied == ["new"]


def test_refresher_backs_off_on_failure_and_is_discarded_after_cancel() -> None:
    rec = _Recorder()
    applied = threading.Event()
    outcomes: List[object] = [None, RuntimeError("auth server down"), "ok"]

    def handler() -> Optional[str]:
        with rec.lock:
            rec.calls.append(time.monotonic())
            outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[return-value]

    def apply(token: str) -> None:
        rec.applied.append(token)
        applied.set()

    refresher = TokenRefresher(apply, rec.failures.append, first_backoff=0.2)
    refresher.schedule(handler, 0.1, None)
    assert applied.wait(10)
    refresher.cancel()
    gaps = [b - a for a, b in zip(rec.calls, rec.calls[1:])]
    assert gaps[0] >= 0.18 and gaps[1] >= 0.38  # 0.2 s, then doubled: never a fixed-rate spin
    assert [type(e) for e in rec.failures] == [ValueError, RuntimeError]
    assert rec.applied == ["ok"]
    assert not refresher.active


def test_refresh_finishing_after_cancel_is_discarded() -> None:
    started, release = threading.Event(), threading.Event()
    applied: List[str] = []

    def handler() -> str:
        started.set()
        release.wait(5)
        return "late"

    refresher = TokenRefresher(applied.append, lambda e: None)
    refresher.schedule(handler, 0.05, None)
    assert started.wait(5)
    refresher.cancel()
    release.set()
    # The handler thread finishes right after release; wait for it through the timer thread.
    for thread in threading.enumerate():
        if thread.name == "triplit-token-refresh":
            thread.join(5)
    assert applied == []


def test_claims_at_a_path_give_roles_identity_and_claims_but_not_the_expiry() -> None:
    from triplit_sync.session import Session
    from triplit_sync.session.tokens import check_claims_path, claims_at_path

    payload = {"sub": "auth0|x", "exp": 2_000_000_000, "https://t/c": {"app": {"sub": "alice", "role": "admin"}}}
    assert claims_at_path(payload, "https://t/c.app") == {"sub": "alice", "role": "admin"}
    assert claims_at_path(payload, None) == payload
    internal = {"x-triplit-token-type": "secret", "exp": 1}
    assert claims_at_path(internal, "https://t/c.app") == internal  # the server's own tokens: the top
    for missing in ("nope", "https://t/c.app.sub", "https://t/c.nope"):
        with pytest.raises(TokenDecodingError, match="claims_path"):
            claims_at_path(payload, missing)
    for bad in ("", "a..b", ".a", 3):
        with pytest.raises(ValueError):
            check_claims_path(bad)

    token = mint_token("s", payload)
    session = Session(token, SAMPLE_ROLES, claims_path="https://t/c.app")
    assert session.claims == {"sub": "alice", "role": "admin"}
    assert session.roles == {"user": {"userId": "alice"}, "admin": {}}
    assert session.expires_at == 2_000_000_000 and not session.is_expired()
    assert session.identity == Session(mint_token("s", {"sub": "alice", "role": "admin"}), SAMPLE_ROLES).identity
    info = session.info("OPEN")
    assert info.claims == {"sub": "alice", "role": "admin"} and info.expires_at is not None
    expired = Session(mint_token("s", {**payload, "exp": 1}), SAMPLE_ROLES, claims_path="https://t/c.app")
    assert expired.is_expired()  # the top-level exp, though the claims at the path have none


def test_renew_now_runs_the_handler_at_once_but_never_cuts_a_backoff_short() -> None:
    rec = _Recorder()
    outcomes: List[object] = [RuntimeError("down"), "ok"]

    def handler() -> str:
        with rec.lock:
            rec.calls.append(time.monotonic())
            outcome = outcomes.pop(0)
        rec.event.set()
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    refresher = TokenRefresher(rec.applied.append, rec.failures.append, first_backoff=0.5)
    refresher.schedule(handler, None, time.time() + 3600)  # due in an hour
    seen = refresher.attempts()
    start = time.monotonic()
    assert refresher.renew_now()
    refresher.wait_attempt(seen, 5)
    assert rec.calls and rec.calls[0] - start < 0.5  # now, not in an hour
    assert refresher.attempts() == seen + 1 and len(rec.failures) == 1
    for _ in range(5):
        assert refresher.renew_now()  # the retry's backoff stands: no extra calls
    rec.wait_calls(2)
    refresher.cancel()
    assert rec.calls[1] - rec.calls[0] >= 0.45 and len(rec.calls) == 2 and rec.applied == ["ok"]
    assert not refresher.renew_now()  # no handler after cancel


def test_session_variables_follow_the_servers_normalization() -> None:
    from triplit_sync.session import Session
    from triplit_sync.session.tokens import session_variables

    assert session_variables({"scope": "a b", "x-triplit-user-id": "u"}) == {
        "SESSION_USER_ID": "u", "x-triplit-user-id": "u", "scope": "a b", "_scope": ["a", "b"]}
    assert session_variables({"scope": "a", "_scope": "mine"})["_scope"] == "mine"
    session = Session(mint_token("s", {"sub": "al", "scope": "read write"}), None)
    assert session.variables["_scope"] == ["read", "write"] and "_scope" not in session.claims
