"""The sync engine on READY: every live query is resumed (with a check of a batch whose answer was
lost), then the writes go; never a CONNECT_QUERY while a CHANGES is unanswered, never a CHANGES
before the server has answered a PING sent after the last CONNECT_QUERY (PROTOCOL.md §13.2);
after disconnect()/connect() and after the server restarts (durable server storage).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterator, List

import pytest

from triplit_sync import TriplitClient
from triplit_sync.testing import TriplitTestServer
from triplit_sync.wire.messages import ChangesAck, ChangesMessage, ConnectQuery, Ping

from ..conftest import SAMPLE_SCHEMA
from ..support.client import (
    Collector,
    SentLog,
    server_rows,
    wait_equal_to_server,
)

pytest_plugins = ["tests.support.client_fixtures"]  # make_client, rich

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


class hold_acks:
    """Drops the next CHANGES_ACK before the engine sees it (as if the connection died right
    after the server committed); ``wait()`` returns once one was dropped."""

    def __init__(self, client: TriplitClient) -> None:
        self.dropped = threading.Event()
        engine = client._engine
        original = engine.handle_message

        def handle(msg: Any) -> None:
            if isinstance(msg, ChangesAck) and not self.dropped.is_set():
                self.dropped.set()
                return
            original(msg)

        engine.handle_message = handle  # type: ignore[method-assign]

    def wait(self, timeout: float) -> bool:
        return self.dropped.wait(timeout)


def batch_ids(msg: Any) -> List[str]:
    return sorted(i for c in msg.changes.values() for i in list(c["sets"]) + list(c["deletes"]))


def test_ready_resumes_the_queries_checks_the_unacked_batch_then_sends_the_writes(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = live_client(make_client, triplit)
    cols = subscribe_all(client, TODOS, MINE)
    log = SentLog(client)
    log.hold("CHANGES")
    client.insert("todos", todo("a1"))  # in flight, lost
    log.wait_held(1)  # the send order may hold a CHANGES for a round trip before it goes
    client.insert("todos", todo("a2"))  # pending behind it
    client.disconnect()
    log.hold(None)
    log.clear()
    for col in cols:
        col.fulfilled.clear()
    client.connect()
    client.wait_for_sync(10)
    for col in cols:
        assert col.fulfilled.wait(10)
    sent = [m for m in log.messages if isinstance(m, (ChangesMessage, ConnectQuery, Ping))]
    sent = [m for m in sent if not isinstance(m, Ping) or (m.client_timestamp or 0) < 0]  # barriers only
    assert [m.TYPE for m in sent] == ["CONNECT_QUERY"] * 3 + ["PING", "CHANGES", "CHANGES"]
    probe = sent[0]
    # The batch whose answer was lost: asked for before anything is sent again.
    assert probe.id.startswith("verify-") and probe.state["entityIds"] == {"todos": ["a1"]}
    assert {m.id for m in sent[1:3]} == {s for s in client._engine._queries}
    assert batch_ids(sent[4]) == ["a1"] and batch_ids(sent[5]) == ["a2"]
    assert [r["id"] for r in server_rows(triplit, TODOS)] == ["a1", "a2"]


def test_a_lost_answer_to_an_applied_batch_is_recognised(triplit: TriplitTestServer, make_client: Make) -> None:
    """The batch reached the server but its CHANGES_ACK did not reach the client: on READY the
    server is asked, the batch is seen applied, and it is not sent again."""
    client = live_client(make_client, triplit)
    (col,) = subscribe_all(client, TODOS)
    client.insert("todos", todo("a1"))
    client.wait_for_sync(10)
    log = SentLog(client)
    acks = hold_acks(client)
    client.update("todos", "a1", {"text": "applied"})
    assert acks.wait(10)  # the server committed it; the client never heard
    client.disconnect()
    assert client.pending_changes()  # still in flight as far as the client knows
    log.clear()
    client.connect()
    client.wait_for_sync(10)
    assert not [m for m in log.messages if isinstance(m, ChangesMessage)]
    assert server_rows(triplit, TODOS)[0]["text"] == "applied"
    col.wait(lambda rows: [r["text"] for r in rows] == ["applied"])


def test_writes_wait_for_the_barrier_after_a_new_query(triplit: TriplitTestServer, make_client: Make) -> None:
    client = live_client(make_client, triplit)
    subscribe_all(client, TODOS)
    log = SentLog(client)
    col = Collector()
    client.subscribe(MINE, col, on_remote_fulfilled=col.on_remote_fulfilled)
    client.insert("todos", todo("a1"))
    client.wait_for_sync(10)
    assert col.fulfilled.wait(10)
    types = [m.TYPE for m in log.messages if isinstance(m, (ChangesMessage, ConnectQuery))
             or isinstance(m, Ping) and (m.client_timestamp or 0) < 0]
    assert types.index("CHANGES") > types.index("PING") > types.index("CONNECT_QUERY")


def test_ready_sends_pending_writes_after_the_queries(triplit: TriplitTestServer, make_client: Make) -> None:
    client = live_client(make_client, triplit)
    subscribe_all(client, TODOS)
    client.disconnect()
    client.insert("todos", todo("a1"))
    client.insert("todos", todo("a2"))
    log = SentLog(client)
    col = Collector()
    client.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)  # a second subscriber
    client.connect()
    client.wait_for_sync(10)
    assert col.fulfilled.wait(10)
    sent = [m for m in log.messages if isinstance(m, (ChangesMessage, ConnectQuery))]
    assert [m.TYPE for m in sent] == ["CONNECT_QUERY", "CHANGES"]
    assert sent[0].state is not None  # a resume, not a fresh load
    assert batch_ids(sent[1]) == ["a1", "a2"]


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


def test_a_late_close_of_the_old_connection_does_not_reset_the_new_one(
        triplit: TriplitTestServer, make_client: Make) -> None:
    """The old connection's close (its on_close: "connection lost") can come late, after a cut
    made from inside a handler or a slow close reply. Delivered after the new connection's READY,
    it made the engine forget the live connection: the resumed queries were never answered. A new
    connection now opens only once the old one's close was delivered."""
    client = live_client(make_client, triplit)
    (col,) = subscribe_all(client, TODOS)
    engine = client._engine
    lost, ready = engine.connection_lost, engine.connection_ready
    order: List[str] = []
    new_ready = threading.Event()

    def slow_lost() -> None:  # a close that takes its time; the new READY may come meanwhile
        new_ready.wait(2)
        lost()
        order.append("lost")

    def seen_ready(send: Any) -> None:
        order.append("ready")
        new_ready.set()
        ready(send)

    engine.connection_lost = slow_lost  # type: ignore[method-assign]
    engine.connection_ready = seen_ready  # type: ignore[method-assign]
    col.fulfilled.clear()
    client.disconnect()
    client.connect()
    assert col.fulfilled.wait(15), f"the resumed query was never answered ({order})"
    assert order == ["lost", "ready"]
    client.insert("todos", todo("a1"))
    client.wait_for_sync(10)
    assert [r["id"] for r in server_rows(triplit, TODOS)] == ["a1"]


def test_a_batch_in_flight_when_the_server_dies_is_sent_again(
        durable_server: TriplitTestServer, make_client: Make) -> None:
    server = durable_server
    client = live_client(make_client, server)
    subscribe_all(client, TODOS)
    log = SentLog(client)
    log.hold("CHANGES")
    client.insert("todos", todo("a1"))
    log.wait_held(1)  # in flight: sent, and its answer will never come
    server.kill()
    log.hold(None)
    server.start()
    client.connect()
    client.wait_for_sync(20)
    assert [r["id"] for r in server_rows(server, TODOS)] == ["a1"]
    assert any(isinstance(m, ChangesMessage) and batch_ids(m) == ["a1"] for m in log.messages)


# ---------------------------------------------------------------------------------- cached, not kept fresh


def verifications(log: SentLog) -> List[ConnectQuery]:
    return [m for m in log.messages if isinstance(m, ConnectQuery) and m.id.startswith("verify-")]


def test_a_stale_cached_entity_moved_into_a_limit_is_checked_with_the_server(
        triplit: TriplitTestServer, make_client: Make) -> None:
    """Entities a finished query left in the cache are not updated by the server any more; one
    that a limit now lets in is asked for again instead of being shown as it was."""
    for i, n in (("a", 9), ("b", 8), ("c", 7), ("d", 6)):
        triplit.post("insert", {"collectionName": "todos", "entity": {
            **todo(i, "bob"), "completed": False, "created_at": f"2024-01-0{n}T00:00:00.000Z"}})
    client = live_client(make_client, triplit)
    everything = Collector()
    sub = client.subscribe(TODOS, everything, on_remote_fulfilled=everything.on_remote_fulfilled)
    everything.wait_ids(["a", "b", "c", "d"])
    sub.unsubscribe()  # a, b, c, d stay cached, and the server no longer updates them here
    top_q = {"collectionName": "todos", "order": [["created_at", "DESC"]], "limit": 2}
    (top,) = subscribe_all(client, top_q)
    top.wait_ids(["a", "b"])
    log = SentLog(client)
    from triplit_sync.http import HttpClient

    with HttpClient(triplit.url, triplit.service_token()) as http:
        http.update("todos", "c", {"created_at": "2023-01-01T00:00:00.000Z"})  # c leaves the top for good
        http.delete("todos", "a")  # now the server's top two are b and d
    wait_equal_to_server(client, triplit, top_q, triplit.user_token("alice"), top)
    # The callback thread delivers a moment after the local state changed.
    top.wait(lambda rows: [r["id"] for r in rows] == ["b", "d"])
    checked = [m.state["entityIds"]["todos"] for m in verifications(log)]
    assert checked[0] == ["c"]  # (d may be checked too: it came in while the stale c was shown)


def test_a_stale_acknowledged_write_joined_by_a_relation_is_checked_with_the_server(
        rich: TriplitTestServer, make_client: Make) -> None:
    from triplit_sync.http import HttpClient

    from ..support.rich_schema import rich_schema

    token = rich.user_token("alice")
    client = make_client(rich, token, schema=rich_schema())
    q = {"collectionName": "todos", "where": [["n", ">=", 5]], "include": {"notes": None}}
    col = Collector()
    client.subscribe(q, col, on_remote_fulfilled=col.on_remote_fulfilled)
    assert col.fulfilled.wait(10)
    with HttpClient(rich.url, rich.service_token(), schema=rich_schema()) as http:
        http.insert("todos", {"id": "t1", "text": "x", "n": 1, "meta": {"prio": 1}})
        client.insert("notes", {"id": "n1", "todo_id": "t1", "body": "mine"})
        client.wait_for_sync(10)  # n1 is cached (acknowledged); no live query holds it
        log = SentLog(client)
        http.delete("notes", "n1")  # the server has no reason to tell this client
        http.update("todos", "t1", {"n": 7})  # t1 joins the query: would bring the cached n1 along
    rows = col.wait(lambda rows: bool(rows) and rows[0]["notes"] == [])
    assert rows[0]["id"] == "t1"
    wait_equal_to_server(client, rich, q, token, col)
    assert [m.state["entityIds"] for m in verifications(log)] == [{"notes": ["n1"]}]
    assert client._store.get_cached("notes", "n1") is None
