"""Token refresh against the real server: timing, intervals, backoff, expired tokens, discarded refreshes."""

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
    Events,
    WireSpy,
    client_factory,
    session_errors,
)
from triplit_sync.testing import TriplitTestServer
from triplit_sync.transport.websocket import ConnectionStatus


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    yield from client_factory()


@pytest.fixture(scope="module")
def restartable() -> Iterator[TriplitTestServer]:
    """A server of this module's own, to stop and start without disturbing the shared one."""
    with TriplitTestServer(schema=SAMPLE_SCHEMA) as server:
        yield server


def test_the_handler_is_called_one_second_before_exp_and_again_from_the_new_token(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    calls = Events()
    tokens: List[str] = []

    def handler() -> str:
        calls.add("refresh", time.time())
        token = triplit.user_token("alice", expires_in=3)
        tokens.append(token)
        return token

    first = triplit.user_token("alice", expires_in=3)
    client = clients(triplit.url, first, refresh_handler=handler)
    errors = session_errors(client)
    spy = WireSpy(client)
    assert client.wait_connected(10)
    (_, t1, _, _), (_, t2, _, _) = calls.wait_count("refresh", 2, timeout=10)
    exp1 = jwt.get_unverified_claims(first)["exp"]
    exp2 = jwt.get_unverified_claims(tokens[0])["exp"]
    assert 0.7 <= exp1 - t1 <= 1.3, exp1 - t1
    assert 0.7 <= exp2 - t2 <= 1.3, exp2 - t2  # the next timer was set from the new token
    spy.wait_sent("UPDATE_TOKEN", 2)  # each new token went to the server on the live socket
    assert client._transport.is_ready and errors.items == []
    assert client.session is not None and client.session.claims["exp"] >= exp2


def test_the_handler_runs_every_interval_and_never_after_end_session(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    calls = Events()

    def handler() -> str:
        calls.add("refresh", time.monotonic())
        return triplit.user_token("alice")

    client = clients(triplit.url, triplit.user_token("alice"), refresh_handler=handler, refresh_interval=0.3)
    assert client.wait_connected(10)
    started = time.monotonic()
    got = calls.wait_count("refresh", 4, timeout=10)
    times = [v for _, v, _, _ in got]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.25 <= g <= 0.8 for g in gaps), gaps
    assert times[0] - started <= 0.8
    client.end_session()
    after = len(calls.of("refresh"))
    # Three intervals (and some) with no call; a call would wake this wait early.
    assert not calls.wait_for(lambda: len(calls.of("refresh")) > after, timeout=1.0)
    assert not client._sessions.refresher.active


def test_a_failing_handler_is_retried_with_backoff_and_reported(
        triplit: TriplitTestServer, clients: ClientFactory, caplog: pytest.LogCaptureFixture) -> None:
    calls = Events()
    outcomes: List[object] = [RuntimeError("auth server down"), None, "token", "token"]

    def handler() -> Optional[str]:
        calls.add("refresh", time.monotonic())
        outcome = outcomes.pop(0) if outcomes else "token"
        if isinstance(outcome, Exception):
            raise outcome
        return None if outcome is None else triplit.user_token("alice")

    client = clients(triplit.url, triplit.user_token("alice"), refresh_handler=handler, refresh_interval=0.2)
    errors = session_errors(client)
    assert client.wait_connected(10)
    with caplog.at_level(logging.WARNING, logger="triplit_sync"):
        got = calls.wait_count("refresh", 4, timeout=15)
    times = [v for _, v, _, _ in got]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert 0.9 <= gaps[0] <= 1.6, gaps  # first retry after 1 s
    assert 1.9 <= gaps[1] <= 2.6, gaps  # then 2 s: doubling, never a 1-second spin
    assert gaps[2] <= 0.6, gaps  # success: back to the interval
    reported = errors.wait_count("refresh_error", 2)
    assert [type(v).__name__ for _, v, _, _ in reported] == ["RuntimeError", "ValueError"]
    assert all(thread == "triplit-callbacks" for _, _, thread, _ in reported)
    assert "auth server down" in caplog.text and "retrying" in caplog.text
    assert client._transport.is_ready and errors.of("session_error") == []


def test_an_expired_token_with_a_handler_is_refreshed_before_connecting(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    seen = Events()
    holder: List[object] = []

    def handler() -> str:
        client = holder[0] if holder else None
        seen.add("refresh", None if client is None else client._transport.client_id)  # type: ignore[attr-defined]
        return triplit.user_token("alice", expires_in=600)

    expired = triplit.user_token("alice", expires_in=-30)
    client = clients(triplit.url, expired, refresh_handler=handler, auto_connect=False)
    errors = session_errors(client)
    holder.append(client)
    client.connect()
    assert client.wait_connected(10)
    assert seen.values("refresh") == [None]  # called once, before any connection was ready
    assert client.session is not None and client.session.claims["exp"] > time.time() + 500
    assert errors.items == []
    # The constructor path does the same.
    other = clients(triplit.url, expired, refresh_handler=handler)
    assert other.wait_connected(10)
    assert other.session is not None and other.session.claims["exp"] > time.time() + 500


def test_a_reconnect_whose_token_expired_refreshes_first(
        restartable: TriplitTestServer, clients: ClientFactory) -> None:
    refreshed = Events()

    def handler() -> str:
        refreshed.add("refresh")
        return restartable.user_token("alice", expires_in=600)

    short = restartable.user_token("alice", expires_in=3)
    # An interval far away: only the reconnect can call the handler in this test.
    with_handler = clients(restartable.url, short, refresh_handler=handler, refresh_interval=300)
    without = clients(restartable.url, short)
    events = {c: session_errors(c) for c in (with_handler, without)}
    for client in (with_handler, without):
        client._transport.backoff_initial, client._transport.backoff_max = 0.05, 0.2
        assert client.wait_connected(10)
    restartable.stop()
    try:
        # While the server is down the client keeps trying; once exp passed, an attempt refreshes.
        refreshed.wait_count("refresh", 1, timeout=10)
    finally:
        restartable.start()
    assert with_handler.wait_connected(15)
    assert events[with_handler].items == []
    assert len(refreshed.of("refresh")) == 1
    # Without a handler the expired token reaches the server, which says UNAUTHORIZED, once.
    assert events[without].wait_count("session_error", 1, timeout=15)
    assert events[without].values("session_error") == ["UNAUTHORIZED"]
    assert without.connection_status is ConnectionStatus.CLOSED
    assert not without.wait_connected(0.5)


def test_a_refresh_that_finishes_after_end_session_is_discarded(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    entered, release = threading.Event(), threading.Event()

    def handler() -> str:
        entered.set()
        release.wait(10)
        return triplit.user_token("alice", v=2)

    client = clients(triplit.url, triplit.user_token("alice"), refresh_handler=handler, refresh_interval=0.1)
    errors = session_errors(client)
    spy = WireSpy(client)
    assert entered.wait(10)
    client.end_session()
    release.set()
    _join_refresh_threads()
    assert client.session is None
    assert spy.sent("UPDATE_TOKEN") == [] and spy.events.values("unsent") == []
    assert errors.items == []


def test_a_refresh_that_finishes_after_a_newer_token_is_discarded(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    entered, release = threading.Event(), threading.Event()
    first = [True]

    def handler() -> str:
        if first[0]:  # only the first call is slow; later calls come from the newer token's timer
            first[0] = False
            entered.set()
            release.wait(10)
            return triplit.user_token("alice", v="slow")
        return triplit.user_token("alice", v="later")

    client = clients(triplit.url, triplit.user_token("alice"), refresh_handler=handler, refresh_interval=0.1,
                     auto_connect=False)
    errors = session_errors(client)
    spy = WireSpy(client)
    client.connect()
    assert client.wait_connected(10)
    assert entered.wait(10)
    client.update_session_token(triplit.user_token("alice", v="newer"))
    release.set()
    _join_refresh_threads()
    sent = [jwt.get_unverified_claims(m.token).get("v") for m in spy.sent("UPDATE_TOKEN")]  # type: ignore[attr-defined]
    assert sent[0] == "newer" and "slow" not in sent, sent
    assert client.session is not None and client.session.claims["v"] != "slow"
    assert errors.items == []


def _join_refresh_threads() -> None:
    for thread in threading.enumerate():
        if thread.name == "triplit-token-refresh" and thread is not threading.current_thread():
            thread.join(10)


def test_the_first_call_is_never_sooner_than_one_second_from_now() -> None:
    from triplit_sync.session import TokenRefresher

    refresher = TokenRefresher(lambda token: None, lambda error: None)
    assert refresher.delay_for(time.time() + 0.3, None) == 1.0
    assert refresher.delay_for(time.time() - 60, None) == 1.0  # already expired: no 0-second spin
    assert 8.5 < refresher.delay_for(time.time() + 10, None) <= 9.0  # type: ignore[operator]
    assert refresher.delay_for(time.time() + 10, 0.2) == 0.2  # an interval wins
    assert refresher.delay_for(None, None) is None  # a token without exp and no interval: no timer


def test_an_expired_token_and_a_failing_handler_have_one_caller_and_one_backoff(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    calls = Events()
    down = threading.Event()
    down.set()

    def handler() -> str:
        calls.add("refresh", time.monotonic())
        if down.is_set():
            raise RuntimeError("auth server down")
        return triplit.user_token("alice", expires_in=600)

    client = clients(triplit.url, triplit.user_token("alice", expires_in=-30), refresh_handler=handler,
                     auto_connect=False)
    errors = session_errors(client)
    # A transport retrying this fast would call the handler many times if its attempts still did.
    client._transport.backoff_initial, client._transport.backoff_max = 0.05, 0.1
    client.connect()
    got = calls.wait_count("refresh", 3, timeout=10)
    times = [v for _, v, _, _ in got]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert 0.9 <= gaps[0] <= 1.6 and 1.9 <= gaps[1] <= 2.6, gaps  # the refresher's backoff, alone
    assert {thread for _, _, thread, _ in got} == {"triplit-token-refresh"}  # never the connection's thread
    assert not calls.wait_for(lambda: len(calls.of("refresh")) > 3, timeout=2.0)  # next one 4 s later
    assert len(errors.wait_count("refresh_error", 3)) == 3  # each failure reported once
    assert client.connection_status is ConnectionStatus.CONNECTING and not client._transport.is_ready
    down.clear()
    assert client.wait_connected(10)  # the waiting attempt connects with the retry's token
    assert len(calls.of("refresh")) == 4 and errors.of("session_error") == []
    assert client.session is not None and client.session.expires_at is not None


def test_end_session_ends_a_connection_attempt_waiting_for_a_refresh(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    calls = Events()

    def handler() -> str:
        calls.add("refresh")
        raise RuntimeError("auth server down")

    client = clients(triplit.url, triplit.user_token("alice", expires_in=-30), refresh_handler=handler)
    calls.wait_count("refresh", 1)
    runner = client._transport._runner
    client.end_session()
    assert runner is not None
    runner.join(2)
    assert not runner.is_alive()
    assert not calls.wait_for(lambda: len(calls.of("refresh")) > 1, timeout=1.5)
    assert client.connection_status is ConnectionStatus.UNINITIALIZED
