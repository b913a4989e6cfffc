"""TriplitClient.subscribe and watch against the real server.

Sample schema (todos / messages) unless a test asks for ``rich`` (tests/support/rich_schema.py:
dates, sets, records, relations).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Callable, Dict, List

import pytest

from triplit_sync import TriplitClient
from triplit_sync.errors import QueryError, TriplitTimeoutError
from triplit_sync.testing import TriplitTestServer

from ..conftest import SAMPLE_SCHEMA
from ..support.client import (
    Collector,
    SentLog,
    normalize,
    server_rows,
    wait_equal_to_server,
)

pytest_plugins = ["tests.support.client_fixtures"]  # make_client, rich

Make = Callable[..., TriplitClient]
TODOS = {"collectionName": "todos", "order": [["id", "ASC"]]}
ALICE_TODOS = {"collectionName": "todos", "where": [["owner", "=", "alice"]], "order": [["id", "ASC"]]}
BOB_TODOS = {"collectionName": "todos", "where": [["owner", "=", "bob"]], "order": [["id", "ASC"]]}
MESSAGES = {"collectionName": "messages", "order": [["id", "ASC"]]}


def todo(i: str, owner: str = "alice", **extra: Any) -> Dict[str, Any]:
    return {"id": i, "text": f"todo {i}", "owner": owner, "completed": False,
            "created_at": "2024-01-02T00:00:00.000Z", **extra}


def post_insert(server: TriplitTestServer, collection: str, entity: Dict[str, Any]) -> None:
    status, body = server.post("insert", {"collectionName": collection, "entity": entity})
    assert status == 200, body


def ids(rows: Any) -> List[str]:
    return [r["id"] for r in rows]


def user(make_client: Make, server: TriplitTestServer, sub: str, **kw: Any) -> TriplitClient:
    client = make_client(server, server.user_token(sub), **kw)
    assert client.wait_connected(10)
    return client


# ---------------------------------------------------------------------------------- first results


def test_first_callback_carries_the_servers_results(triplit: TriplitTestServer, make_client: Make) -> None:
    post_insert(triplit, "todos", todo("t1", "bob"))
    client = user(make_client, triplit, "alice")
    col = Collector()
    client.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)
    assert col.fulfilled.wait(10)
    assert ids(col.wait()) == ["t1"]
    assert ids(col.calls[0]) == ["t1"]  # no empty "local" call before the server's answer
    col.quiet(0.2)
    assert col.count == 1


def test_updates_from_other_clients_arrive(triplit: TriplitTestServer, make_client: Make) -> None:
    alice = user(make_client, triplit, "alice")
    bob = user(make_client, triplit, "bob")
    col = Collector()
    alice.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)
    assert col.fulfilled.wait(10)
    bob.insert("todos", todo("b1", "bob"))
    col.wait_ids(["b1"])
    bob.update("todos", "b1", {"text": "changed"})
    col.wait(lambda rows: rows and rows[0]["text"] == "changed")
    bob.http.insert("todos", todo("b2", "bob"))  # over HTTP with bob's token
    col.wait_ids(["b1", "b2"])
    post_insert(triplit, "todos", todo("s1", "carol"))  # service token
    col.wait_ids(["b1", "b2", "s1"])
    bob.delete("todos", "b1")
    col.wait_ids(["b2", "s1"])
    wait_equal_to_server(alice, triplit, TODOS, triplit.user_token("alice"), col)


def test_a_failing_query_reports_on_error_and_the_others_keep_syncing(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = user(make_client, triplit, "alice")  # schemaless: the server is the one to refuse
    bad = Collector()
    good = Collector()
    client.subscribe({"collectionName": "nope"}, bad, bad.on_error)
    client.subscribe(TODOS, good, good.on_error, on_remote_fulfilled=good.on_remote_fulfilled)
    error = bad.wait_error()
    assert isinstance(error, QueryError) and error.name == "InvalidCollectionNameError"
    assert good.fulfilled.wait(10)
    post_insert(triplit, "todos", todo("t1", "bob"))
    good.wait_ids(["t1"])
    assert good.errors == [] and bad.calls == []
    # A second subscriber of the failed query hears about the failure at once.
    again = Collector()
    client.subscribe({"collectionName": "nope"}, again, again.on_error)
    assert isinstance(again.wait_error(), QueryError)


def test_on_remote_fulfilled_comes_after_the_first_results(
        triplit: TriplitTestServer, make_client: Make) -> None:
    post_insert(triplit, "todos", todo("t1", "bob"))
    client = user(make_client, triplit, "alice")
    order: List[str] = []
    done = threading.Event()
    client.subscribe(TODOS, lambda rows: order.append(f"rows:{len(rows)}"),
                     on_remote_fulfilled=lambda: (order.append("fulfilled"), done.set()))
    assert done.wait(10)
    assert order == ["rows:1", "fulfilled"]


# ---------------------------------------------------------------------------------- ending subscriptions


def test_unsubscribe_stops_callbacks_and_the_server_subscription(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = user(make_client, triplit, "alice")
    one, two = Collector(), Collector()
    log = SentLog(client)
    sub1 = client.subscribe(TODOS, one, on_remote_fulfilled=one.on_remote_fulfilled)
    sub2 = client.subscribe(TODOS, two)
    assert one.fulfilled.wait(10)
    assert log.types().count("CONNECT_QUERY") == 1  # one server subscription per distinct query
    sub1.unsubscribe()
    assert "DISCONNECT_QUERY" not in log.types()  # the other subscriber still needs it
    post_insert(triplit, "todos", todo("t1", "bob"))
    two.wait_ids(["t1"])
    assert one.calls == [[]]
    with sub2:
        pass  # leaving the block unsubscribes
    assert not sub2.active
    assert log.types().count("DISCONNECT_QUERY") == 1
    n = two.count
    post_insert(triplit, "todos", todo("t2", "bob"))
    two.quiet(0.3)
    assert two.count == n
    sub2.unsubscribe()  # twice is fine


def test_local_only_subscription_never_asks_the_server(triplit: TriplitTestServer, make_client: Make) -> None:
    post_insert(triplit, "todos", todo("t1", "bob"))
    client = user(make_client, triplit, "alice")
    log = SentLog(client)
    col = Collector()
    client.subscribe(TODOS, col, local_only=True)
    assert col.wait() == []  # at once, from the (empty) local database
    assert "CONNECT_QUERY" not in log.types()
    client.insert("todos", todo("a1"))
    col.wait_ids(["a1"])
    # Data another query brings in shows up in it too.
    other = Collector()
    client.subscribe(BOB_TODOS, other, on_remote_fulfilled=other.on_remote_fulfilled)
    col.wait_ids(["a1", "t1"])


# ---------------------------------------------------------------------------------- re-evaluation


def test_only_affected_queries_are_re_evaluated_and_only_changes_are_delivered(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = make_client(triplit, triplit.service_token(), schema=SAMPLE_SCHEMA)
    assert client.wait_connected(10)
    runs: Counter = Counter()
    runner = client._engine.runner
    original = runner.run

    def counting(query: Dict[str, Any]) -> Any:
        runs[repr(query.get("where"))] += 1
        return original(query)

    runner.run = counting  # type: ignore[method-assign]
    alice, bob, msgs = Collector(), Collector(), Collector()
    for q, col in ((ALICE_TODOS, alice), (BOB_TODOS, bob), (MESSAGES, msgs)):
        client.subscribe(q, col, on_remote_fulfilled=col.on_remote_fulfilled)
    for col in (alice, bob, msgs):
        assert col.fulfilled.wait(10)
    base = dict(runs)
    counts = (alice.count, bob.count, msgs.count)

    post_insert(triplit, "messages", {"id": "m1", "text": "hi", "author_id": "x",
                                      "created_at": "2024-01-01T00:00:00.000Z"})
    msgs.wait_ids(["m1"])
    assert runs[repr(ALICE_TODOS["where"])] == base[repr(ALICE_TODOS["where"])]  # todos untouched
    assert runs[repr(BOB_TODOS["where"])] == base[repr(BOB_TODOS["where"])]

    post_insert(triplit, "todos", todo("b1", "bob"))
    bob.wait_ids(["b1"])
    alice.quiet(0.3)
    # Same collection, but b1 is not in alice's results and does not match her query: not even
    # evaluated again (a one-level query), and no call.
    assert runs[repr(ALICE_TODOS["where"])] == base[repr(ALICE_TODOS["where"])]
    assert alice.count == counts[0]
    assert runs[repr(BOB_TODOS["where"])] > base[repr(BOB_TODOS["where"])]
    assert msgs.count == counts[2] + 1


# ---------------------------------------------------------------------------------- relations


def test_includes_follow_related_changes(rich: TriplitTestServer, make_client: Make) -> None:
    from ..support.rich_schema import rich_schema

    schema = rich_schema()
    token = rich.user_token("alice")
    client = make_client(rich, token, schema=schema)
    other = make_client(rich, rich.user_token("bob"), schema=schema)
    q = (client.query("todos").include("assignee").include("notes").order("id", "ASC")).to_json()
    col = Collector()
    client.subscribe(q, col, on_remote_fulfilled=col.on_remote_fulfilled)
    assert col.fulfilled.wait(10)
    other.insert("users", {"id": "u1", "name": "Ann"})
    other.insert("todos", {"id": "t1", "text": "x", "meta": {"prio": 1}, "assignee_id": "u1"})
    rows = col.wait(lambda rows: bool(rows) and rows[0].get("assignee") is not None)
    assert rows[0]["assignee"]["name"] == "Ann" and rows[0]["notes"] == []
    other.insert("notes", {"id": "n1", "todo_id": "t1", "body": "first"})
    col.wait(lambda rows: bool(rows) and [n["id"] for n in rows[0]["notes"]] == ["n1"])
    other.update("users", "u1", {"name": "Anna"})
    col.wait(lambda rows: bool(rows) and rows[0]["assignee"]["name"] == "Anna")
    n = col.count
    other.delete("notes", "n1")
    col.wait(lambda rows: rows[0]["notes"] == [], after=n)
    other.wait_for_sync(10)
    wait_equal_to_server(client, rich, q, token, col)
    # A filter through a relation (an exists subquery).
    rel = {"collectionName": "todos", "where": [["assignee.name", "=", "Anna"]]}
    col2 = Collector()
    client.subscribe(rel, col2)
    col2.wait_ids(["t1"])
    other.update("users", "u1", {"name": "Bea"})
    col2.wait_ids([])


# ---------------------------------------------------------------------------------- watch


def test_watch_yields_results_as_they_change(triplit: TriplitTestServer, make_client: Make) -> None:
    post_insert(triplit, "todos", todo("t1", "bob"))
    client = user(make_client, triplit, "alice")
    with client.watch(TODOS, timeout=10) as stream:
        it = iter(stream)
        assert ids(next(it)) == ["t1"]
        post_insert(triplit, "todos", todo("t2", "bob"))
        assert ids(next(it)) == ["t1", "t2"]
        stream.timeout = 0.2
        with pytest.raises(TriplitTimeoutError):
            next(it)
        stream.timeout = 10
        post_insert(triplit, "todos", todo("t3", "bob"))
        assert ids(next(it)) == ["t1", "t2", "t3"]
    with pytest.raises(StopIteration):
        next(it)  # closed by the with block
    assert client._engine._queries == {}  # nothing left subscribed


def test_watch_in_a_for_loop_and_errors(triplit: TriplitTestServer, make_client: Make) -> None:
    client = user(make_client, triplit, "alice")
    seen: List[int] = []
    stream = client.watch(TODOS, timeout=10)

    def writer() -> None:
        for i in range(3):
            post_insert(triplit, "todos", todo(f"t{i}", "bob"))

    threading.Thread(target=writer, daemon=True).start()
    for rows in stream:
        seen.append(len(rows))
        if len(rows) == 3:
            stream.close()
    assert seen[-1] == 3 and seen == sorted(seen)
    with pytest.raises(QueryError):
        with client.watch({"collectionName": "nope"}, timeout=10) as bad:
            next(iter(bad))
    with pytest.raises(ValueError):
        client.watch(TODOS, timeout=0)


def test_callbacks_may_call_the_client(triplit: TriplitTestServer, make_client: Make) -> None:
    client = user(make_client, triplit, "alice")
    done = threading.Event()
    seen: List[Any] = []

    def on_rows(rows: List[Dict[str, Any]]) -> None:
        if not rows:
            client.insert("todos", todo("from-callback"))  # a write from the callback thread
        else:
            seen.append(client.fetch(TODOS, policy="local-only"))
            done.set()

    sub = client.subscribe(TODOS, on_rows)
    assert done.wait(10)
    assert ids(seen[0]) == ["from-callback"]
    sub.unsubscribe()
    client.wait_for_sync(10)
    assert normalize(server_rows(triplit, TODOS))[0]["id"] == "from-callback"


def test_an_entity_deleted_and_created_again_while_away_replaces_the_cached_one(
        rich: TriplitTestServer, make_client: Make) -> None:
    """On resume the server sends the new entity as a whole document and no delete: what the
    old one had and the new one lacks must go (a merge would keep it)."""
    from triplit_sync.http import HttpClient

    from ..support.rich_schema import rich_schema

    token = rich.user_token("alice")
    client = make_client(rich, token, schema=rich_schema())
    q = {"collectionName": "todos", "order": [["id", "ASC"]]}
    col = Collector()
    client.subscribe(q, col, on_remote_fulfilled=col.on_remote_fulfilled)
    assert col.fulfilled.wait(10)
    with HttpClient(rich.url, rich.service_token(), schema=rich_schema()) as http:
        http.insert("todos", {"id": "t1", "text": "old", "tags": {"a"}, "meta": {"prio": 1, "label": "L"},
                              "due": "2025-01-01T00:00:00.000Z"})
        col.wait(lambda rows: bool(rows) and rows[0]["text"] == "old")
        client.disconnect()
        http.delete("todos", "t1")
        http.insert("todos", {"id": "t1", "text": "new", "meta": {"prio": 2}})
    client.connect()
    rows = col.wait(lambda rows: bool(rows) and rows[0]["text"] == "new")
    assert rows[0]["tags"] == set() and rows[0].get("due") is None and rows[0]["meta"] == {"prio": 2}
    wait_equal_to_server(client, rich, q, token, col)
