"""Silent stalls are noticed (real server behind tests/support/relay.py): a connection whose TCP stays
open while nothing passes is dropped within ping_interval + pong_timeout (<= 2 x ping_interval),
a write batch whose ack does not come makes the client probe the connection, and the writes
made meanwhile land on the server once the relay forwards again."""

from __future__ import annotations

import threading
import time
from typing import Iterator, List, Optional

import pytest

from tests.support.relay import Relay
from triplit_sync import TriplitClient
from triplit_sync.testing import TriplitTestServer
from triplit_sync.transport.websocket import ConnectionStatus, StatusChange

from ..conftest import SAMPLE_SCHEMA
from ..support.client import server_rows


@pytest.fixture
def relay(triplit: TriplitTestServer) -> Iterator[Relay]:
    with Relay(triplit.port) as r:
        yield r


class Drops:
    """When the client's connection left OPEN, as seen by a status listener."""

    def __init__(self, client: TriplitClient) -> None:
        self.cond = threading.Condition()
        self.times: List[float] = []
        self.errors: List[Optional[str]] = []
        client._transport.add_status_listener(self)

    def __call__(self, change: StatusChange) -> None:
        if change.previous is ConnectionStatus.OPEN:
            with self.cond:
                self.times.append(time.monotonic())
                self.errors.append(change.close.error if change.close is not None else None)
                self.cond.notify_all()

    def wait(self, timeout: float) -> float:
        with self.cond:
            assert self.cond.wait_for(lambda: self.times, timeout), f"no drop noticed within {timeout} s"
            return self.times[0]


def todo(i: str) -> dict:
    return {"id": i, "text": f"todo {i}", "owner": "alice"}


def assert_landed_once(client: TriplitClient, triplit: TriplitTestServer, ids: List[str]) -> None:
    client.wait_for_sync(20)
    rows = server_rows(triplit, {"collectionName": "todos", "where": [["id", "in", ids]]})
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert client.pending_changes() == []


def test_a_silent_stall_is_noticed_within_two_ping_intervals(
        triplit: TriplitTestServer, relay: Relay) -> None:
    interval = 1.0
    client = TriplitClient(relay.url, token=triplit.user_token("alice"), storage="memory",
                           ping_interval=interval, schema=SAMPLE_SCHEMA)
    try:
        assert client.wait_connected(10)
        drops = Drops(client)
        client.fetch({"collectionName": "todos"}, policy="remote-first", timeout=10)  # traffic, then quiet
        stalled_at = time.monotonic()
        relay.stall()
        ids = [f"stall-{i}" for i in range(20)]
        for i in ids[:10]:
            client.insert("todos", todo(i))
        noticed = drops.wait(2 * interval + 3) - stalled_at
        assert noticed <= 2 * interval + 0.5, noticed  # scheduling slack on a busy machine
        assert "ping" in (drops.errors[0] or "")
        for i in ids[10:]:
            client.insert("todos", todo(i))  # while reconnecting into the stalled relay
        relay.resume()
        assert client.wait_connected(15)
        assert_landed_once(client, triplit, ids)
    finally:
        client.close()


def test_an_unanswered_write_batch_probes_and_resumes_the_connection(
        triplit: TriplitTestServer, relay: Relay) -> None:
    # Pings are 30 s apart: only the ack deadline can notice the stall this soon.
    client = TriplitClient(relay.url, token=triplit.user_token("alice"), storage="memory",
                           ping_interval=30, pong_timeout=1, schema=SAMPLE_SCHEMA)
    try:
        client._engine.ack_timeout = 0.5
        assert client.wait_connected(10)
        client.insert("todos", todo("before"))
        client.wait_for_sync(10)
        drops = Drops(client)
        relay.stall()
        sent_at = time.monotonic()
        client.insert("todos", todo("during"))
        noticed = drops.wait(10) - sent_at
        assert noticed < 0.5 + 1 + 1.5, noticed  # ack deadline + pong deadline + slack
        relay.resume()
        assert client.wait_connected(15)
        assert_landed_once(client, triplit, ["before", "during"])
    finally:
        client.close()


def test_a_connection_that_answers_is_left_alone(triplit: TriplitTestServer, relay: Relay) -> None:
    client = TriplitClient(relay.url, token=triplit.user_token("alice"), storage="memory",
                           ping_interval=0.2, pong_timeout=0.2)
    try:
        assert client.wait_connected(10)
        drops = Drops(client)
        assert client._transport.probe(1.0)
        with drops.cond:
            assert not drops.cond.wait_for(lambda: drops.times, 1.5)  # ~7 pings answered
        assert client.connection_status is ConnectionStatus.OPEN
    finally:
        client.close()


def test_pong_timeout_is_checked_at_the_call() -> None:
    with pytest.raises(ValueError, match="pong_timeout"):
        TriplitClient("http://127.0.0.1:9", storage="memory", ping_interval=1, pong_timeout=5)
    with pytest.raises(ValueError, match="pong_timeout"):
        TriplitClient("http://127.0.0.1:9", storage="memory", pong_timeout=0)
