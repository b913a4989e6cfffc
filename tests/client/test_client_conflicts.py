"""Writes survive conflicts (real server): a delete of an entity that is already gone is a
success, a batch the server applied but whose answer was lost is not reported as failed, and
when the server refuses a batch only the writes it really refuses are rolled back.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List

from triplit_sync import TriplitClient, WriteError
from triplit_sync.http import HttpClient
from triplit_sync.testing import TriplitTestServer
from triplit_sync.wire.messages import ChangesAck, ChangesMessage

from ..conftest import SAMPLE_SCHEMA
from ..support.client import Collector, SentLog, server_rows, wait_equal_to_server

pytest_plugins = ["tests.support.client_fixtures"]  # make_client

Make = Callable[..., TriplitClient]
TODOS = {"collectionName": "todos", "order": [["id", "ASC"]]}


def todo(i: str, owner: str = "alice", **extra: Any) -> Dict[str, Any]:
    return {"id": i, "text": f"todo {i}", "owner": owner, **extra}


def live(make_client: Make, server: TriplitTestServer, **kw: Any) -> TriplitClient:
    client = make_client(server, server.user_token("alice"), schema=SAMPLE_SCHEMA, **kw)
    assert client.wait_connected(10)
    return client


def errors_of(client: TriplitClient) -> List[WriteError]:
    seen: List[WriteError] = []
    client.on_sync_error(seen.append)
    return seen


def test_a_delete_of_an_entity_another_device_deleted_loses_nothing(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = live(make_client, triplit)
    reported = errors_of(client)
    col = Collector()
    client.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)
    client.insert("todos", todo("e1"))
    client.insert("todos", todo("e2"))
    client.wait_for_sync(10)
    col.wait_ids(["e1", "e2"])
    client.disconnect()
    client.update("todos", "e2", {"text": "edited offline"})
    client.insert("todos", todo("n1"))
    client.delete("todos", "e1")
    with HttpClient(triplit.url, triplit.service_token()) as http:
        http.delete("todos", "e1")  # another device got there first
    client.connect()
    client.wait_for_sync(15)  # no WriteError: the delete's goal is reached
    rows = server_rows(triplit, TODOS)
    assert [(r["id"], r["text"]) for r in rows] == [("e2", "edited offline"), ("n1", "todo n1")]
    wait_equal_to_server(client, triplit, TODOS, triplit.user_token("alice"), col)
    assert client._store.get_cached("todos", "e1") is None
    client._dispatcher.flush(5)
    assert reported == []


def test_only_the_refused_transaction_is_rolled_back(triplit: TriplitTestServer, make_client: Make) -> None:
    client = live(make_client, triplit)
    reported = errors_of(client)
    col = Collector()
    client.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)
    assert col.fulfilled.wait(10)
    client.disconnect()  # everything below becomes one batch on reconnect
    client.insert("todos", todo("a1"))
    with client.transact() as tx:
        tx.insert("todos", todo("b1", owner="bob"))  # alice may not write bob's todos
        tx.insert("todos", todo("b2"))  # same transaction: refused with it
    client.insert("todos", todo("a2"))
    client.update("todos", "a1", {"text": "a1 again"})
    for i in range(3, 8):
        client.insert("todos", todo(f"a{i}"))
    log = SentLog(client)
    client.connect()
    try:
        client.wait_for_sync(20)
    except WriteError as error:
        refused = error
    else:
        raise AssertionError("the refused transaction was not reported")
    assert refused.name == "WritePermissionError"
    assert sorted(refused.changes["todos"]["sets"]) == ["b1", "b2"]
    client.wait_for_sync(10)  # reported once, the rest is done
    ids = [r["id"] for r in server_rows(triplit, TODOS)]
    assert ids == ["a1", "a2", "a3", "a4", "a5", "a6", "a7"]
    assert server_rows(triplit, TODOS)[0]["text"] == "a1 again"
    wait_equal_to_server(client, triplit, TODOS, triplit.user_token("alice"), col)
    client._dispatcher.flush(5)
    assert [e.name for e in reported] == ["WritePermissionError"]
    batches = [m for m in log.messages if isinstance(m, ChangesMessage)]
    assert len(batches) <= 8  # the refused unit was found by halving, not one write at a time


def test_a_resent_batch_of_deletes_the_server_had_applied_is_not_an_error(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = live(make_client, triplit)
    reported = errors_of(client)
    for i in ("d1", "d2", "d3"):
        client.insert("todos", todo(i))
    client.wait_for_sync(10)
    dropped = threading.Event()
    engine = client._engine
    original = engine.handle_message

    def lose_the_ack(msg: Any) -> None:
        if isinstance(msg, ChangesAck) and not dropped.is_set():
            dropped.set()  # the connection "dies" right after the server committed
            return
        original(msg)

    engine.handle_message = lose_the_ack  # type: ignore[method-assign]
    with client.transact() as tx:
        tx.delete("todos", "d1")
        tx.delete("todos", "d2")
    assert dropped.wait(10)
    client.disconnect()
    client.connect()
    client.wait_for_sync(15)
    assert [r["id"] for r in server_rows(triplit, TODOS)] == ["d3"]
    client._dispatcher.flush(5)
    assert reported == []


def test_a_generic_error_for_a_delete_of_an_existing_entity_is_still_reported(
        triplit: TriplitTestServer, make_client: Make) -> None:
    """The check is for entities that are gone: a delete the server refuses for another reason
    (here: a permission rule, on an entity that exists) is rolled back and reported."""
    with HttpClient(triplit.url, triplit.service_token()) as http:
        http.insert("todos", {**todo("theirs", owner="bob"), "completed": False,
                              "created_at": "2024-01-01T00:00:00.000Z"})
    client = live(make_client, triplit)
    col = Collector()
    client.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)
    col.wait_ids(["theirs"])
    client.delete("todos", "theirs")
    col.wait_ids([])
    try:
        client.wait_for_sync(10)
    except WriteError as error:
        assert error.name == "WritePermissionError"
        assert error.changes["todos"]["deletes"] == {"theirs"}
    else:
        raise AssertionError("a refused delete was not reported")
    col.wait_ids(["theirs"])  # rolled back
