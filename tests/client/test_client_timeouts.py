"""No wait without an end, and logs that say what happened (issue 13, items 4 and 5)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable, Iterator, List, Optional

import pytest

from triplit_sync import TriplitClient, TriplitTimeoutError
from triplit_sync.testing import TriplitTestServer

from ..support.relay import Relay

pytest_plugins = ["tests.support.client_fixtures"]  # make_client

Make = Callable[..., TriplitClient]
TODOS = {"collectionName": "todos"}


def unreachable_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_the_client_default_is_thirty_seconds(triplit: TriplitTestServer, make_client: Make) -> None:
    client = make_client(triplit, auto_connect=False)
    assert client._timeout == 30.0


@pytest.mark.parametrize("policy", ["local-first", "remote-first"])
def test_a_fetch_against_an_unreachable_server_ends_by_the_client_default(
        triplit: TriplitTestServer, make_client: Make, policy: str) -> None:
    client = TriplitClient(unreachable_url(), token=triplit.user_token("alice"), storage="memory", timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(TriplitTimeoutError):
            client.fetch(TODOS, policy=policy)
        assert 0.4 < time.monotonic() - started < 5
        started = time.monotonic()
        with pytest.raises(TriplitTimeoutError):
            client.fetch_one(TODOS, policy=policy, timeout=0.1)  # the call's own timeout wins
        assert time.monotonic() - started < 0.5 + 0.4
        assert client.wait_connected() is False
    finally:
        client.close()


def test_wait_for_sync_ends_by_the_client_default(triplit: TriplitTestServer) -> None:
    client = TriplitClient(unreachable_url(), token=triplit.user_token("alice"), storage="memory", timeout=0.3)
    try:
        client.insert("todos", {"text": "x", "owner": "alice"})
        with pytest.raises(TriplitTimeoutError):
            client.wait_for_sync()
        assert [w["op"] for w in client.pending_changes()] == ["insert"]
    finally:
        client.close()


def test_timeout_none_waits_until_the_server_answers(triplit: TriplitTestServer) -> None:
    with Relay(triplit.port) as relay:
        relay.refuse(True)
        client = TriplitClient(relay.url, token=triplit.user_token("alice"), storage="memory", timeout=0.1)
        try:
            threading.Timer(0.5, relay.refuse, (False,)).start()
            assert client.fetch(TODOS, policy="remote-first", timeout=None) == []
        finally:
            client.close()


@pytest.mark.parametrize("bad", [-1, "5", True])
def test_a_bad_timeout_is_refused_at_the_call(triplit: TriplitTestServer, make_client: Make, bad: object) -> None:
    with pytest.raises(ValueError, match=repr(bad).replace("'", ".")):
        make_client(triplit, auto_connect=False, timeout=bad)
    client = make_client(triplit, auto_connect=False)
    with pytest.raises(ValueError):
        client.wait_for_sync(bad)  # type: ignore[arg-type]


class LogWaiter(logging.Handler):
    """Records the library's log lines; ``wait(text)`` blocks until one contains ``text``."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []
        self.cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.cond:
            self.records.append(record)
            self.cond.notify_all()

    def wait(self, text: str, level: int = logging.INFO, timeout: float = 10.0) -> logging.LogRecord:
        def found() -> Optional[logging.LogRecord]:
            return next((r for r in self.records if text in r.getMessage() and r.levelno == level), None)
        with self.cond:
            assert self.cond.wait_for(found, timeout), f"no {logging.getLevelName(level)} line with {text!r}"
            return found()  # type: ignore[return-value]


@pytest.fixture
def logs() -> Iterator[LogWaiter]:
    waiter = LogWaiter()
    logger = logging.getLogger("triplit_sync")
    old = logger.level
    logger.addHandler(waiter)
    logger.setLevel(logging.DEBUG)
    yield waiter
    logger.removeHandler(waiter)
    logger.setLevel(old)


def test_info_logs_a_reconnect_and_a_refresh_but_not_a_deliberate_close(
        triplit: TriplitTestServer, logs: LogWaiter) -> None:
    refreshed = threading.Event()

    def handler() -> str:
        refreshed.set()
        return triplit.user_token("alice")

    with Relay(triplit.port) as relay:
        client = TriplitClient(relay.url, token=triplit.user_token("alice"), storage="memory",
                               refresh_handler=handler, refresh_interval=0.3)
        try:
            logs.wait("connected to")
            relay.cut()
            logs.wait("connection closed")  # not asked for: INFO
            logs.wait("again (after 1 attempt(s))")
            assert refreshed.wait(5)
            logs.wait("session token refreshed")
            with logs.cond:
                logs.records.clear()
        finally:
            client.close()
    logs.wait("connection closed", level=logging.DEBUG)  # asked for: routine
    assert not [r for r in logs.records if r.levelno >= logging.INFO and "closed" in r.getMessage()]
