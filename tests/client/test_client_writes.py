"""TriplitClient writes against the real server: insert / update / delete / transact, the outbox,
wait_for_sync, rejected writes (WriteError, on_sync_error, rollback), pending changes.

Sample schema (alice may write only todos she owns) unless a test uses ``rich``.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from triplit_sync import TriplitClient
from triplit_sync.errors import EntityNotFoundError, InvalidQueryError, TriplitTimeoutError, WriteError
from triplit_sync.testing import TriplitTestServer

from ..conftest import SAMPLE_SCHEMA
from ..support.client import (
    ROOT,
    Collector,
    SentLog,
    normalize,
    server_rows,
    wait_equal_to_server,
)

pytest_plugins = ["tests.support.client_fixtures"]  # make_client, rich

Make = Callable[..., TriplitClient]
TODOS = {"collectionName": "todos", "order": [["id", "ASC"]]}


def ids(rows: Any) -> List[str]:
    return [r["id"] for r in rows]


def alice(make_client: Make, server: TriplitTestServer, **kw: Any) -> TriplitClient:
    kw.setdefault("schema", SAMPLE_SCHEMA)
    client = make_client(server, server.user_token("alice"), **kw)
    assert client.wait_connected(10)
    return client


def on_server(server: TriplitTestServer, query: Dict[str, Any] = TODOS) -> Any:
    return server_rows(server, query)


# ---------------------------------------------------------------------------------- insert / update / delete


def test_insert_fills_defaults_and_is_synced(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    row = client.insert("todos", {"text": "milk", "owner": "alice"})
    assert row["completed"] is False and isinstance(row["created_at"], dt.datetime) and row["id"]
    client.wait_for_sync(10)
    assert on_server(triplit) == normalize([row])
    assert client.pending_changes() == []


def test_writes_are_visible_before_the_ack_and_sent_again_after_a_reconnect(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    col = Collector()
    client.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)
    assert col.fulfilled.wait(10)
    log = SentLog(client)
    log.hold("CHANGES")  # "sent", but the server never sees it: no ACK
    client.insert("todos", {"id": "a1", "text": "x", "owner": "alice"})
    col.wait_ids(["a1"])  # optimistic: at once
    assert ids(client.fetch(TODOS, policy="local-only")) == ["a1"]
    log.wait_held(1)
    assert [p["in_flight"] for p in client.pending_changes()] == [True]
    client.insert("todos", {"id": "a2", "text": "y", "owner": "alice"})  # waits behind the in-flight batch
    assert [p["in_flight"] for p in client.pending_changes()] == [True, False]
    assert len(log.held) == 1 and on_server(triplit) == []
    with pytest.raises(TriplitTimeoutError):
        client.wait_for_sync(0.3)
    log.hold(None)
    client.disconnect()
    client.connect()
    client.wait_for_sync(10)
    assert ids(on_server(triplit)) == ["a1", "a2"]
    changes = [m for m in log.messages if m.TYPE == "CHANGES"]
    assert [sorted(m.changes["todos"]["sets"]) for m in changes] == [["a1"], ["a2"]]  # in-flight first


def test_update_with_a_dict_or_a_function_and_delete(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    row = client.insert("todos", {"id": "a1", "text": "x", "owner": "alice"})
    client.update("todos", "a1", {"completed": True})
    client.update("todos", "a1", lambda t: t.update(text="y"))

    def edit(t: Dict[str, Any]) -> None:
        t["text"] = t["text"] + "z"

    client.update("todos", "a1", edit)
    local = client.fetch_by_id("todos", "a1", policy="local-only")
    assert local is not None and local["text"] == "yz" and local["completed"] is True
    client.wait_for_sync(10)
    assert on_server(triplit) == normalize([{**row, "text": "yz", "completed": True}])
    client.delete("todos", "a1")
    assert client.fetch(TODOS, policy="local-only") == []
    client.wait_for_sync(10)
    assert on_server(triplit) == []


def test_bad_writes_raise_at_the_call(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    with pytest.raises(EntityNotFoundError, match="'missing'"):
        client.update("todos", "missing", lambda t: t.update(text="x"))
    client.insert("todos", {"id": "a1", "text": "x", "owner": "alice"})
    with pytest.raises(InvalidQueryError, match="id"):
        client.update("todos", "a1", {"id": "other"})
    with pytest.raises(InvalidQueryError, match="id"):
        client.update("todos", "a1", lambda t: t.update(id="other"))
    with pytest.raises(TypeError):
        client.update("todos", "a1", 3)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="nope"):
        client.insert("nope", {"text": "x"})
    with pytest.raises(InvalidQueryError, match="nope"):
        client.delete("nope", "a1")
    with pytest.raises(TypeError):
        client.delete("todos", 1)  # type: ignore[arg-type]
    client.wait_for_sync(10)
    assert ids(on_server(triplit)) == ["a1"]


def test_sets_dates_and_records(rich: TriplitTestServer, make_client: Make) -> None:
    from ..support.rich_schema import rich_schema

    token = rich.user_token("alice")
    client = make_client(rich, token, schema=rich_schema())
    due = dt.datetime(2025, 3, 4, 5, 6, 7, 8000, tzinfo=dt.timezone.utc)
    row = client.insert("todos", {"id": "t1", "text": "x", "tags": {"a", "b"}, "meta": {"prio": 1},
                                  "due": due})
    assert row["tags"] == {"a", "b"} and row["due"] == due and row["n"] == 0
    client.update("todos", "t1", lambda t: (t["tags"].add("c"), t["tags"].discard("a")))
    client.update("todos", "t1", {"meta": {"label": "L"}})  # records merge key by key
    client.update("todos", "t1", {"due": None})  # optional: removed
    local = client.fetch_by_id("todos", "t1", policy="local-only")
    assert local is not None
    assert local["tags"] == {"b", "c"} and local["meta"] == {"prio": 1, "label": "L"}
    assert local.get("due") is None
    client.wait_for_sync(10)
    q = {"collectionName": "todos"}
    assert server_rows(rich, q, token) == normalize([local])
    client.update("todos", "t1", {"tags": {"z"}})  # a Python set replaces the stored set
    client.wait_for_sync(10)
    assert server_rows(rich, q, token)[0]["tags"] == ["z"]
    wait_equal_to_server(client, rich, q, token)


# ---------------------------------------------------------------------------------- transactions


def test_transact_sends_one_batch(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    client.insert("todos", {"id": "a0", "text": "old", "owner": "alice"})
    client.wait_for_sync(10)
    log = SentLog(client)
    with client.transact() as tx:
        first = tx.insert("todos", {"id": "a1", "text": "x", "owner": "alice"})
        tx.insert("todos", {"id": "a2", "text": "y", "owner": "alice"})
        tx.update("todos", "a1", lambda t: t.update(text=t["text"] + "!"))  # sees its own insert
        tx.delete("todos", "a0")
        assert first["id"] == "a1"
        assert client.fetch_by_id("todos", "a1", policy="local-only") is None  # not before the block ends
    client.wait_for_sync(10)
    assert log.types().count("CHANGES") == 1
    assert [(r["id"], r["text"]) for r in on_server(triplit)] == [("a1", "x!"), ("a2", "y")]


def test_a_transaction_that_raises_writes_nothing(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    with pytest.raises(RuntimeError):
        with client.transact() as tx:
            tx.insert("todos", {"id": "a1", "text": "x", "owner": "alice"})
            raise RuntimeError("changed my mind")
    assert client.fetch(TODOS, policy="local-only") == [] and client.pending_changes() == []
    with pytest.raises(InvalidQueryError):
        tx.insert("todos", {"id": "a2", "text": "x", "owner": "alice"})  # ended


def test_many_writes_in_a_row_coalesce_into_few_batches(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    log = SentLog(client)
    for i in range(200):
        client.insert("todos", {"id": f"a{i:03d}", "text": "x", "owner": "alice"})
    client.wait_for_sync(20)
    batches = log.types().count("CHANGES")
    assert 1 <= batches < 200  # one in flight at a time; the rest wait and go together
    assert len(on_server(triplit)) == 200


# ---------------------------------------------------------------------------------- durability


def test_a_write_is_durable_when_insert_returns(triplit: TriplitTestServer, tmp_path: Path) -> None:
    """The writing process dies right after insert() (no close, no atexit); a new one sends it."""
    data_dir = tmp_path / "data"
    script = (
        "import os, sys\n"
        "from triplit_sync import TriplitClient\n"
        "c = TriplitClient(sys.argv[1], token=sys.argv[2], auto_connect=False, name='d',\n"
        "                  data_dir=sys.argv[3])\n"
        "c.insert('todos', {'id': 'a1', 'text': 'x', 'owner': 'alice', 'completed': False,\n"
        "                   'created_at': '2024-01-01T00:00:00.000Z'})\n"
        "os._exit(0)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", script, triplit.url, triplit.user_token("alice"), str(data_dir)],
                   check=True, env=env, timeout=60)
    with TriplitClient(triplit.url, triplit.user_token("alice"), name="d", data_dir=data_dir,
                       auto_connect=False) as client:
        pending = client.pending_changes()
        assert [(p["collection"], p["id"], p["op"]) for p in pending] == [("todos", "a1", "insert")]
        client.connect()
        client.wait_for_sync(10)
    assert ids(on_server(triplit)) == ["a1"]


# ---------------------------------------------------------------------------------- rejections


def test_a_rejected_write_is_reported_rolled_back_and_later_writes_go_on(
        triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    col = Collector()
    client.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)
    assert col.fulfilled.wait(10)
    reported: List[WriteError] = []
    got = threading.Event()
    remove = client.on_sync_error(lambda e: (reported.append(e), got.set()))
    client.insert("todos", {"id": "bad", "text": "x", "owner": "bob"})  # alice may not write bob's todos
    with pytest.raises(WriteError) as info:
        client.wait_for_sync(10)
    err = info.value
    assert err.name == "WritePermissionError"
    assert sorted(err.changes["todos"]["sets"]) == ["bad"]
    assert got.wait(10) and reported[0] is err
    col.wait_ids([])  # rolled back locally
    assert client.fetch(TODOS, policy="local-only") == [] and client.pending_changes() == []
    client.wait_for_sync(1)  # reported once; nothing pending any more
    client.insert("todos", {"id": "good", "text": "y", "owner": "alice"})
    client.wait_for_sync(10)
    assert ids(on_server(triplit)) == ["good"]
    col.wait_ids(["good"])
    remove()
    client.insert("todos", {"id": "bad2", "text": "x", "owner": "bob"})
    with pytest.raises(WriteError):
        client.wait_for_sync(10)
    assert len(reported) == 1  # the removed callback heard nothing


def test_a_rejected_update_restores_the_servers_version(
        triplit: TriplitTestServer, make_client: Make) -> None:
    status, _ = triplit.post("insert", {"collectionName": "todos", "entity": {
        "id": "b1", "text": "bob's", "owner": "bob", "completed": False,
        "created_at": "2024-01-01T00:00:00.000Z"}})
    assert status == 200
    client = alice(make_client, triplit)
    col = Collector()
    client.subscribe(TODOS, col)
    col.wait(lambda rows: bool(rows) and rows[0]["text"] == "bob's")
    client.update("todos", "b1", {"text": "hijacked"})
    col.wait(lambda rows: bool(rows) and rows[0]["text"] == "hijacked")
    with pytest.raises(WriteError):
        client.wait_for_sync(10)
    col.wait(lambda rows: bool(rows) and rows[0]["text"] == "bob's", after=col.count - 1)


def test_wait_for_sync_times_out_while_offline(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    client.disconnect()
    client.insert("todos", {"id": "a1", "text": "x", "owner": "alice"})
    with pytest.raises(TriplitTimeoutError):
        client.wait_for_sync(0.2)
    with pytest.raises(ValueError):
        client.wait_for_sync(-1)
    client.connect()
    client.wait_for_sync(10)
    assert ids(on_server(triplit)) == ["a1"]


# ---------------------------------------------------------------------------------- pending changes


def test_pending_changes_and_clearing_them(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    client.insert("todos", {"id": "keep", "text": "k", "owner": "alice"})
    client.wait_for_sync(10)
    client.disconnect()
    client.insert("todos", {"id": "a1", "text": "x", "owner": "alice"})
    client.insert("todos", {"id": "a2", "text": "y", "owner": "alice"})
    client.update("todos", "keep", {"text": "changed"})
    pending = client.pending_changes()
    assert [(p["id"], p["op"], p["in_flight"]) for p in pending] == [
        ("a1", "insert", False), ("a2", "insert", False), ("keep", "update", False)]
    assert pending[2]["values"] == {"text": "changed"} and isinstance(pending[0]["owner"], str)
    client.clear_pending_changes("todos", "a1")
    assert ids(client.fetch(TODOS, policy="local-only")) == ["a2", "keep"]
    client.clear_pending_changes("todos", "keep")  # back to the server's version
    assert client.fetch_by_id("todos", "keep", policy="local-only")["text"] == "k"  # type: ignore[index]
    with pytest.raises(ValueError):
        client.clear_pending_changes(entity_id="a2")
    client.clear_pending_changes()
    assert client.pending_changes() == [] and ids(client.fetch(TODOS, policy="local-only")) == ["keep"]
    client.connect()
    client.wait_for_sync(10)
    assert [(r["id"], r["text"]) for r in on_server(triplit)] == [("keep", "k")]


def test_a_query_that_cannot_be_evaluated_does_not_undo_a_write(
        triplit: TriplitTestServer, make_client: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write is in the outbox before live queries are re-evaluated: one that raises is
    reported to its subscribers, and the write still returns and is sent."""
    client = alice(make_client, triplit)
    col = Collector()
    broken = {"collectionName": "todos", "where": [["text", "=", "x"]]}
    client.subscribe(broken, col, on_error=col.on_error, on_remote_fulfilled=col.on_remote_fulfilled)
    assert col.fulfilled.wait(10)
    runner = client._engine.runner
    run = runner.run

    def run_or_fail(query: Any) -> Any:
        if query.get("where") == broken["where"]:
            raise RuntimeError("evaluation failed")
        return run(query)

    monkeypatch.setattr(runner, "run", run_or_fail)
    client.insert("todos", {"id": "a1", "text": "x", "owner": "alice"})
    assert isinstance(col.wait_error(), RuntimeError)
    client.wait_for_sync(10)
    assert ids(on_server(triplit)) == ["a1"]
