"""The sync engine on READY: the un-acked batch first, then pending writes, then every live query;
after disconnect()/connect() and after the server restarts (durable server storage).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List

import pytest

from triplit_sync import TriplitClient
from triplit_sync.protocol import ChangesMessage, ConnectQuery
from triplit_sync.testing import TriplitTestServer

from .client_helpers import Collector, SentLog, make_client, server_rows, wait_equal_to_server  # noqa: F401
from .conftest import SAMPLE_SCHEMA

Make = Callable[..., TriplitClient]
TODOS = {"collectionName": "todos", "order": [["id", "ASC"]]}
MINE = {"collectionName": "todos", "where": [["owner", "=", "alice"]]}


def todo(i: str, owner: str = "alice") -> Dict[str, Any]:
    return {"id": i, "text": f"todo {i}", "owner": owner}


@pytest.fixture(scope="module")
def durable() -> Iterator[TriplitTestServer]:
    """A server of our own (it gets restarted) that keeps its data across restarts."""
    with TriplitTestServer(schema=SAMPLE_SCHEMA, storage="sqlite") as server:
        yield server


@pytest.fixture
def durable_server(durable: TriplitTestServer) -> TriplitTestServer:
    if not durable.running:
        durable.start()
    durable.reset()
    return durable


def live_client(make_client: Make, server: TriplitTestServer) -> TriplitClient:
    client = make_client(server, server.user_token("alice"), schema=SAMPLE_SCHEMA)
    assert client.wait_connected(10)
    return client


def subscribe_all(client: TriplitClient, *queries: Dict[str, Any]) -> List[Collector]:
    cols = []
    for q in queries:
        col = Collector()
        client.subscribe(q, col, on_remote_fulfilled=col.on_remote_fulfilled)
        cols.append(col)
    for col in cols:
        assert col.fulfilled.wait(10)
    return cols


def batch_ids(msg: Any) -> List[str]:
    return sorted(i for c in msg.changes.values() for i in list(c["sets"]) + list(c["deletes"]))


def test_ready_resends_the_unacked_batch_then_queries_then_pending_writes(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = live_client(make_client, triplit)
    subscribe_all(client, TODOS, MINE)
    log = SentLog(client)
    log.hold("CHANGES")
    client.insert("todos", todo("a1"))  # in flight, lost
    client.insert("todos", todo("a2"))  # pending behind it
    client.disconnect()
    log.hold(None)
    log.clear()
    client.connect()
    client.wait_for_sync(10)
    sent = [m for m in log.messages if isinstance(m, (ChangesMessage, ConnectQuery))]
    assert [m.TYPE for m in sent] == ["CHANGES", "CONNECT_QUERY", "CONNECT_QUERY", "CHANGES"]
    assert batch_ids(sent[0]) == ["a1"] and batch_ids(sent[3]) == ["a2"]
    assert {m.id for m in sent[1:3]} == {s for s in client._engine._queries}
    assert [r["id"] for r in server_rows(triplit, TODOS)] == ["a1", "a2"]


def test_ready_sends_pending_writes_before_the_queries(triplit: TriplitTestServer, make_client: Make) -> None:
    client = live_client(make_client, triplit)
    subscribe_all(client, TODOS)
    client.disconnect()
    client.insert("todos", todo("a1"))
    client.insert("todos", todo("a2"))
    log = SentLog(client)
    client.connect()
    client.wait_for_sync(10)
    sent = [m for m in log.messages if isinstance(m, (ChangesMessage, ConnectQuery))]
    assert [m.TYPE for m in sent] == ["CHANGES", "CONNECT_QUERY"]
    assert batch_ids(sent[0]) == ["a1", "a2"]
    assert sent[1].state is not None  # a resume, not a fresh load


def test_the_server_restarting_is_survived(durable_server: TriplitTestServer, make_client: Make) -> None:
    server = durable_server
    client = live_client(make_client, server)
    (col,) = subscribe_all(client, TODOS)
    client.insert("todos", todo("a1"))
    client.wait_for_sync(10)
    server.stop()
    client.insert("todos", todo("a2"))  # while the server is down
    col.wait_ids(["a1", "a2"])
    server.start()
    server.post("insert", {"collectionName": "todos", "entity": {
        **todo("b1", "bob"), "completed": False, "created_at": "2024-01-01T00:00:00.000Z"}})
    client.connect()  # skip the rest of the reconnect backoff
    client.wait_for_sync(20)
    col.wait_ids(["a1", "a2", "b1"], timeout=20)
    wait_equal_to_server(client, server, TODOS, server.user_token("alice"), col)


def test_a_batch_in_flight_when_the_server_dies_is_sent_again(
        durable_server: TriplitTestServer, make_client: Make) -> None:
    server = durable_server
    client = live_client(make_client, server)
    subscribe_all(client, TODOS)
    log = SentLog(client)
    log.hold("CHANGES")
    client.insert("todos", todo("a1"))
    server.kill()
    log.hold(None)
    server.start()
    client.connect()
    client.wait_for_sync(20)
    assert [r["id"] for r in server_rows(server, TODOS)] == ["a1"]
    assert any(isinstance(m, ChangesMessage) and batch_ids(m) == ["a1"] for m in log.messages)
