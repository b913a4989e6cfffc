"""Issue 16, items 1, 2, 6 and 8 against the real server: the outcome of one's own writes
(tx.outcome, write_outcome, on_entity_sync), reads inside a transaction, rejected writes to
list, retry or discard, clear(full=...) and get_schema().

Sample schema (alice may write only todos she owns).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable, List

import pytest

from triplit_sync import Schema, TriplitClient, WriteError, WriteOutcome
from triplit_sync.errors import InvalidQueryError, TriplitTimeoutError
from triplit_sync.testing import TriplitTestServer

from ..conftest import SAMPLE_SCHEMA
from ..support.client import SentLog, js_driver, server_rows

pytest_plugins = ["tests.support.client_fixtures"]  # make_client

Make = Callable[..., TriplitClient]
TODOS = {"collectionName": "todos", "order": [["id", "ASC"]]}


def alice(make_client: Make, server: TriplitTestServer, **kw: Any) -> TriplitClient:
    kw.setdefault("schema", SAMPLE_SCHEMA)
    client = make_client(server, server.user_token("alice"), **kw)
    assert client.wait_connected(10)
    return client


def ids(rows: Any) -> List[str]:
    return [r["id"] for r in rows]


def server_ids(server: TriplitTestServer) -> List[str]:
    return ids(server_rows(server, TODOS))


# ---------------------------------------------------------------------------------- 1. outcomes


def test_a_transactions_outcome_is_its_own(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    with client.transact() as good:
        good.insert("todos", {"id": "g1", "text": "mine", "owner": "alice"})
        good.insert("todos", {"id": "g2", "text": "mine too", "owner": "alice"})
    with client.transact() as bad:
        bad.insert("todos", {"id": "b1", "text": "bob's", "owner": "bob"})
    done = threading.Event()
    seen: List[WriteOutcome] = []
    good.outcome.add_done_callback(lambda o: (seen.append(o), done.set()))
    assert good.outcome.wait(10) == "synced" and good.outcome.status == "synced"
    assert sorted(good.outcome.keys) == [("todos", "g1"), ("todos", "g2")]
    assert set(server_ids(triplit)) >= {"g1", "g2"}  # synced means: on the server
    with pytest.raises(WriteError) as info:
        bad.outcome.wait(10)
    assert info.value.name == "WritePermissionError" and bad.outcome.status == "rejected"
    assert bad.outcome.error is info.value
    assert done.wait(10) and seen == [good.outcome]
    with pytest.raises(WriteError):
        client.wait_for_sync(10)  # the shared wait still reports the rejection, once


def test_an_outcome_does_not_wait_for_other_writes(triplit: TriplitTestServer, make_client: Make) -> None:
    """A write is settled by its own ACK, while a later write (another thread's) hangs in flight
    and wait_for_sync, which waits for the whole outbox, times out."""
    client = alice(make_client, triplit)
    log = SentLog(client)
    with client.transact() as mine:
        mine.insert("todos", {"id": "a1", "text": "first", "owner": "alice"})
    deadline = threading.Event()
    while "CHANGES" not in log.types() and not deadline.wait(0.01):
        pass
    log.hold("CHANGES")
    client.insert("todos", {"id": "a2", "text": "other thread", "owner": "alice"})
    other = client.write_outcome("todos", "a2")
    log.wait_held(1)  # a2 is "in flight" and its answer never comes
    assert mine.outcome.wait(10) == "synced"
    with pytest.raises(TriplitTimeoutError):
        client.wait_for_sync(0.3)
    assert other.status == "pending"
    log.hold(None)
    client._transport.reconnect()  # the unanswered batch is checked and sent again
    assert other.wait(10) == "synced"
    assert set(server_ids(triplit)) == {"a1", "a2"}
    assert client.write_outcome("todos", "a1").status == "synced"  # nothing pending: settled at once


def test_dropped_writes_settle_as_dropped(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    client.disconnect()
    with client.transact() as tx:
        tx.insert("todos", {"id": "d1", "text": "x", "owner": "alice"})
    client.insert("todos", {"id": "d2", "text": "y", "owner": "alice"})
    cancelled = client.write_outcome("todos", "d2")
    client.delete("todos", "d2")  # cancels the pending insert: it never reaches the server
    assert cancelled.wait(1) == "dropped"
    client.clear_pending_changes("todos", "d1")
    assert tx.outcome.wait(1) == "dropped"
    with client.transact() as empty:
        pass
    assert empty.outcome.status == "synced"
    with pytest.raises(RuntimeError):
        with client.transact() as failed:
            failed.insert("todos", {"id": "d3", "text": "z", "owner": "alice"})
            raise RuntimeError("the block failed: nothing is written")
    assert failed.outcome.wait(1) == "dropped" and client.fetch_by_id("todos", "d3") is None


def test_on_entity_sync_hears_every_write_of_the_entity(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    ok, failed = threading.Semaphore(0), threading.Semaphore(0)
    errors: List[WriteError] = []
    stop = client.on_entity_sync("todos", "e1", on_success=ok.release,
                                 on_error=lambda e: (errors.append(e), failed.release()))
    client.insert("todos", {"id": "e1", "text": "x", "owner": "alice"})
    assert ok.acquire(timeout=10)
    client.update("todos", "e1", {"text": "y"})
    assert ok.acquire(timeout=10)
    client.update("todos", "e1", {"owner": "bob"})  # not allowed to give it away
    assert failed.acquire(timeout=10) and errors[0].name == "WritePermissionError"
    stop()
    client.delete("todos", "e1")
    client.write_outcome("todos", "e1").wait(10)
    assert not ok.acquire(timeout=0.3)  # removed


def test_an_outcome_is_what_the_js_client_sees(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    js = js_driver()
    try:
        js.call("init", url=triplit.url, token=triplit.user_token("bob"),
                schema=json.loads(Path(SAMPLE_SCHEMA).read_text()))
        js.call("subscribe", sub="all", query=TODOS)
        with client.transact() as tx:
            tx.insert("todos", {"id": "p1", "text": "from python", "owner": "alice"})
        tx.outcome.wait(10)
        expected = server_rows(triplit, TODOS)
        assert ids(expected) == ["p1"]
        assert ids(js.call("waitResults", sub="all", expected=expected, timeout=10)["results"]) == ["p1"]
    finally:
        js.close()


# ---------------------------------------------------------------------------------- 2. reads in a transaction


def test_reads_inside_a_transaction_see_its_writes(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    client.insert("todos", {"id": "t0", "text": "before", "owner": "alice"})
    client.wait_for_sync(10)
    q = client.query("todos").order("id", "ASC")
    with client.transact() as tx:
        tx.insert("todos", {"id": "t1", "text": "new", "owner": "alice"})
        assert ids(tx.fetch(q)) == ["t0", "t1"]
        assert ids(client.fetch(q, policy="local-only")) == ["t0"]  # not outside, not yet
        tx.update("todos", "t0", {"completed": True})
        row = tx.fetch_by_id("todos", "t0")
        assert row is not None and row["completed"] is True and row["text"] == "before"
        tx.delete("todos", "t1")
        assert tx.fetch_by_id("todos", "t1") is None
        one = tx.fetch_one(client.query("todos").where("completed", "=", True))
        assert one is not None and one["id"] == "t0"
    tx.outcome.wait(10)
    assert [(r["id"], r["completed"]) for r in server_rows(triplit, TODOS)] == [("t0", True)]
    with pytest.raises(TypeError):
        tx.fetch_by_id("todos", 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidQueryError):
        client.transact().outcome  # noqa: B018 - not ended yet


# ---------------------------------------------------------------------------------- 6. rejected writes


def test_a_rejected_write_can_be_retried_once_the_reason_is_gone(
        triplit: TriplitTestServer, make_client: Make) -> None:
    status, _ = triplit.post("insert", {"collectionName": "todos", "entity": {
        "id": "b1", "text": "bob's", "owner": "bob", "completed": False, "created_at": "2024-01-01T00:00:00.000Z"}})
    assert status == 200
    client = alice(make_client, triplit)
    client.fetch(TODOS, policy="remote-first", timeout=10)
    client.update("todos", "b1", {"text": "alice's now"})
    with pytest.raises(WriteError):
        client.write_outcome("todos", "b1").wait(10)
    [rejected] = client.rejected_writes()
    assert rejected.name == "WritePermissionError" and rejected.changes["todos"]["sets"]["b1"]["text"] == "alice's now"
    assert client.fetch_by_id("todos", "b1")["text"] == "bob's"  # rolled back
    with pytest.raises(WriteError):
        client.wait_for_sync(1)
    # bob gives the todo to alice: the reason is gone
    status, _ = triplit.post("update", {"collectionName": "todos", "entityId": "b1",
                                        "changes": {"owner": "alice"}})
    assert status == 200
    outcome = rejected.retry()
    assert outcome.wait(10) == "synced"
    assert client.rejected_writes() == []
    assert [r["text"] for r in server_rows(triplit, TODOS)] == ["alice's now"]
    with pytest.raises(LookupError):
        rejected.retry()


def test_rejected_writes_are_discarded_kept_across_restarts_and_cleared_by_a_full_clear(
        triplit: TriplitTestServer, make_client: Make, tmp_path: Any) -> None:
    client = alice(make_client, triplit, storage="sqlite", name="rej")
    client.insert("todos", {"id": "x1", "text": "x", "owner": "bob"})
    client.insert("todos", {"id": "x2", "text": "y", "owner": "bob"})
    for eid in ("x1", "x2"):
        with pytest.raises(WriteError):
            client.write_outcome("todos", eid).wait(10)
    assert sorted(sorted(r.changes["todos"]["sets"]) for r in client.rejected_writes()) == [["x1"], ["x2"]]
    client.rejected_writes()[0].discard()
    assert len(client.rejected_writes()) == 1
    client.close()
    again = alice(make_client, triplit, storage="sqlite", name="rej")
    assert len(again.rejected_writes()) == 1  # in the local database
    again.clear()
    assert len(again.rejected_writes()) == 1  # kept by a normal clear
    again.clear(full=True)
    assert again.rejected_writes() == []
    with pytest.raises(TypeError):
        again.clear(full="yes")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- 8. schema


def test_get_schema(triplit: TriplitTestServer, make_client: Make) -> None:
    client = alice(make_client, triplit)
    schema = client.get_schema()
    assert isinstance(schema, Schema) and "todos" in schema.to_json()["collections"]
    schemaless = make_client(triplit, triplit.service_token())
    assert schemaless.get_schema() is None


def test_outcomes_in_a_batch_the_server_splits(triplit: TriplitTestServer, make_client: Make) -> None:
    """Offline, two transactions become one batch; the server rejects it, the client splits it
    and each transaction gets its own outcome."""
    client = alice(make_client, triplit)
    client.disconnect()
    with client.transact() as good:
        good.insert("todos", {"id": "s1", "text": "mine", "owner": "alice"})
    with client.transact() as bad:
        bad.insert("todos", {"id": "s2", "text": "bob's", "owner": "bob"})
    with client.transact() as later:
        later.insert("todos", {"id": "s3", "text": "mine again", "owner": "alice"})
    client.connect()
    assert good.outcome.wait(10) == "synced"
    with pytest.raises(WriteError):
        bad.outcome.wait(10)
    assert later.outcome.wait(10) == "synced"
    assert server_ids(triplit) == ["s1", "s3"]
    [rejected] = client.rejected_writes()
    assert sorted(rejected.changes["todos"]["sets"]) == ["s2"]
