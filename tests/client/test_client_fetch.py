"""TriplitClient.fetch and its policies, fetch_one, fetch_by_id, timeouts and errors, offline.

Against the real server with the sample schema (todos readable by every user, writable by
their owner).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict

import pytest

from triplit_sync import TriplitClient
from triplit_sync.errors import (
    InvalidQueryError,
    NoActiveSessionError,
    QueryError,
    TriplitConnectionError,
    TriplitTimeoutError,
)
from triplit_sync.testing import TriplitTestServer

from ..support.client import Collector, SentLog

pytest_plugins = ["tests.support.client_fixtures"]  # make_client, rich

Make = Callable[..., TriplitClient]
TODOS = {"collectionName": "todos", "order": [["id", "ASC"]]}


def seed(server: TriplitTestServer, *ids: str, owner: str = "bob", **extra: Any) -> None:
    for i in ids:
        status, body = server.post("insert", {"collectionName": "todos", "entity": {
            "id": i, "text": f"todo {i}", "owner": owner, "completed": False,
            "created_at": "2024-01-01T00:00:00.000Z", **extra}})
        assert status == 200, body


def todo(i: str, owner: str = "alice") -> Dict[str, Any]:
    """A complete todo (a schemaless client fills no defaults; the server requires them)."""
    return {"id": i, "text": f"todo {i}", "owner": owner, "completed": False,
            "created_at": "2024-01-02T00:00:00.000Z"}


def ids(rows: Any) -> list:
    return [r["id"] for r in rows]


def connect_queries(log: SentLog) -> list:
    return [m for m in log.messages if m.TYPE == "CONNECT_QUERY"]


def connected(make_client: Make, server: TriplitTestServer, sub: str = "alice", **kw: Any) -> TriplitClient:
    client = make_client(server, server.user_token(sub), **kw)
    assert client.wait_connected(10)
    return client


# ---------------------------------------------------------------------------------- local-first


def test_local_first_waits_for_the_server_when_the_query_was_never_fulfilled(
        triplit: TriplitTestServer, make_client: Make) -> None:
    seed(triplit, "t1", "t2")
    client = make_client(triplit, triplit.user_token("alice"))  # not connected yet: fetch waits
    rows = client.fetch(TODOS, timeout=10)
    assert ids(rows) == ["t1", "t2"]
    assert rows[0]["created_at"] == "2024-01-01T00:00:00.000Z"  # no client schema: plain JSON


def test_local_first_answers_locally_while_the_query_is_live(
        triplit: TriplitTestServer, make_client: Make) -> None:
    seed(triplit, "t1")
    client = connected(make_client, triplit)
    col = Collector()
    client.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)
    assert col.fulfilled.wait(10)
    log = SentLog(client)
    assert ids(client.fetch(TODOS)) == ["t1"]
    assert connect_queries(log) == []  # answered from the local database


def test_local_first_answers_locally_after_a_fetch_fulfilled_the_query(
        triplit: TriplitTestServer, make_client: Make) -> None:
    seed(triplit, "t1")
    client = connected(make_client, triplit)
    assert ids(client.fetch(TODOS, timeout=10)) == ["t1"]
    log = SentLog(client)
    seed(triplit, "t2")
    # The cache has had this query fulfilled: local-first answers from it (stale is allowed).
    assert ids(client.fetch(TODOS, timeout=10)) == ["t1"]
    assert connect_queries(log) == []
    # remote-first asks again and sees the new one.
    assert ids(client.fetch(TODOS, policy="remote-first", timeout=10)) == ["t1", "t2"]
    assert len(connect_queries(log)) == 1


def test_local_first_answers_locally_from_a_checkpoint_after_a_restart(
        triplit: TriplitTestServer, make_client: Make, tmp_path: Any) -> None:
    seed(triplit, "t1", "t2")
    token = triplit.user_token("alice")
    first = make_client(triplit, token, storage="sqlite", name="c1")
    col = Collector()
    first.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)
    assert col.fulfilled.wait(10)
    first.close()
    again = make_client(triplit, token, storage="sqlite", name="c1", auto_connect=False)
    log = SentLog(again)
    again.connect()
    assert again.wait_connected(10)
    assert ids(again.fetch(TODOS)) == ["t1", "t2"]
    assert connect_queries(log) == []


# ---------------------------------------------------------------------------------- the other policies


def test_local_only_never_asks_the_server(triplit: TriplitTestServer, make_client: Make) -> None:
    seed(triplit, "t1")
    client = connected(make_client, triplit)
    log = SentLog(client)
    assert client.fetch(TODOS, policy="local-only") == []
    client.insert("todos", todo("mine"))
    assert ids(client.fetch(TODOS, policy="local-only")) == ["mine"]  # optimistic write visible
    assert connect_queries(log) == []


def test_remote_first_waits_for_fresh_results(triplit: TriplitTestServer, make_client: Make) -> None:
    client = connected(make_client, triplit)
    assert client.fetch(TODOS, policy="remote-first", timeout=10) == []
    seed(triplit, "t1")
    assert ids(client.fetch(TODOS, policy="remote-first", timeout=10)) == ["t1"]
    seed(triplit, "t2")
    assert ids(client.fetch(TODOS, policy="remote-first", timeout=10)) == ["t1", "t2"]


def test_local_and_remote_without_timeout_answers_now_and_refreshes_in_the_background(
        triplit: TriplitTestServer, make_client: Make) -> None:
    seed(triplit, "t1")
    client = connected(make_client, triplit)
    assert client.fetch(TODOS, policy="local-and-remote") == []  # nothing local yet: at once
    # The background refresh fills the cache; watch it arrive through a local-only subscription.
    col = Collector()
    client.subscribe(TODOS, col, local_only=True)
    col.wait_ids(["t1"])
    assert ids(client.fetch(TODOS, policy="local-only")) == ["t1"]


def test_local_and_remote_with_timeout_waits_for_the_server(
        triplit: TriplitTestServer, make_client: Make) -> None:
    seed(triplit, "t1")
    client = connected(make_client, triplit)
    assert ids(client.fetch(TODOS, policy="local-and-remote", timeout=10)) == ["t1"]


def test_local_and_remote_with_timeout_falls_back_to_local_results(
        triplit: TriplitTestServer, make_client: Make) -> None:
    seed(triplit, "t1")
    client = make_client(triplit, triplit.user_token("alice"), auto_connect=False)
    client.insert("todos", todo("mine"))
    client.connect()
    triplit.stop()  # connecting, never answered
    try:
        start = time.monotonic()
        rows = client.fetch(TODOS, policy="local-and-remote", timeout=0.5)
        assert 0.4 < time.monotonic() - start < 3
        assert ids(rows) == ["mine"]
    finally:
        triplit.start()


def test_unknown_policy_and_bad_timeout_raise_at_the_call(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = make_client(triplit)
    with pytest.raises(ValueError, match="'remote-only'"):
        client.fetch(TODOS, policy="remote-only")
    with pytest.raises(ValueError, match="-1"):
        client.fetch(TODOS, timeout=-1)
    with pytest.raises(InvalidQueryError):
        client.fetch({"where": []})


# ---------------------------------------------------------------------------------- fetch_one, fetch_by_id


def test_fetch_one_and_fetch_by_id(triplit: TriplitTestServer, make_client: Make) -> None:
    seed(triplit, "t1", "t2", "t3")
    client = connected(make_client, triplit)
    one = client.fetch_one({"collectionName": "todos", "order": [["id", "DESC"]]}, timeout=10)
    assert one is not None and one["id"] == "t3"
    assert client.fetch_one({"collectionName": "todos", "where": [["id", "=", "nope"]]}, timeout=10) is None
    found = client.fetch_by_id("todos", "t2", timeout=10)
    assert found is not None and found["text"] == "todo t2" and found["owner"] == "bob"
    assert client.fetch_by_id("todos", "missing", timeout=10) is None
    with pytest.raises(TypeError):
        client.fetch_by_id("todos", 3)  # type: ignore[arg-type]
    # The builder form works too.
    q = client.query("todos").where("owner", "=", "bob").order("id", "DESC")
    assert ids(client.fetch(q, timeout=10)) == ["t3", "t2", "t1"]


def test_fetch_decodes_values_with_the_client_schema(triplit: TriplitTestServer, make_client: Make) -> None:
    from ..conftest import SAMPLE_SCHEMA

    seed(triplit, "t1")
    client = make_client(triplit, triplit.user_token("alice"), schema=SAMPLE_SCHEMA)
    row = client.fetch_by_id("todos", "t1", timeout=10)
    assert row is not None and row["created_at"].isoformat() == "2024-01-01T00:00:00+00:00"


# ---------------------------------------------------------------------------------- timeouts and errors


def test_remote_first_times_out_when_the_server_does_not_answer(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = connected(make_client, triplit)
    triplit.stop()
    try:
        with pytest.raises(TriplitTimeoutError):
            client.fetch(TODOS, policy="remote-first", timeout=0.3)
        with pytest.raises(TriplitTimeoutError):
            client.fetch(TODOS, timeout=0.3)  # local-first, never fulfilled: waits for the server too
    finally:
        triplit.start()


def test_a_query_the_server_rejects_raises_query_error(triplit: TriplitTestServer, make_client: Make) -> None:
    client = connected(make_client, triplit)  # schemaless client: the server knows better
    with pytest.raises(QueryError) as info:
        client.fetch({"collectionName": "nope"}, timeout=10)
    assert info.value.name == "InvalidCollectionNameError"
    with pytest.raises(QueryError):
        client.fetch({"collectionName": "todos", "where": [["text", "has", 1]]},
                     policy="remote-first", timeout=10)
    # The connection is fine: other queries still work.
    seed(triplit, "t1")
    assert ids(client.fetch(TODOS, policy="remote-first", timeout=10)) == ["t1"]


# ---------------------------------------------------------------------------------- offline


def test_without_a_session_reads_are_local_and_writes_wait(
        triplit: TriplitTestServer, make_client: Make) -> None:
    seed(triplit, "t1")
    client = make_client(triplit)  # no token
    assert client.fetch(TODOS) == []  # local-first without a connection: the local answer
    assert client.fetch(TODOS, policy="local-and-remote", timeout=1) == []
    with pytest.raises(NoActiveSessionError):
        client.fetch(TODOS, policy="remote-first")
    col = Collector()
    client.subscribe(TODOS, col)
    assert col.wait() == []  # offline: the subscriber gets the local answer at once
    client.insert("todos", todo("mine"))
    col.wait_ids(["mine"])
    assert len(client.pending_changes()) == 1
    client.start_session(triplit.user_token("alice"))
    client.wait_for_sync(10)
    col.wait_ids(["mine", "t1"])
    status, body = triplit.post("fetch", {"query": TODOS})
    assert [r["id"] for r in body] == ["mine", "t1"]


def test_while_disconnected_reads_are_local(triplit: TriplitTestServer, make_client: Make) -> None:
    seed(triplit, "t1")
    client = connected(make_client, triplit)
    client.disconnect()
    assert client.fetch(TODOS, timeout=1) == []
    with pytest.raises(TriplitConnectionError, match="connect"):
        client.fetch(TODOS, policy="remote-first", timeout=1)
    client.connect()
    assert ids(client.fetch(TODOS, timeout=10)) == ["t1"]


def test_concurrent_fetches_of_one_query_share_the_server_subscription(
        triplit: TriplitTestServer, make_client: Make) -> None:
    seed(triplit, *[f"t{i}" for i in range(5)])
    client = connected(make_client, triplit)
    results: Dict[int, Any] = {}

    def run(i: int) -> None:
        results[i] = ids(client.fetch(TODOS, policy="remote-first", timeout=10))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert all(r == [f"t{i}" for i in range(5)] for r in results.values()) and len(results) == 6
