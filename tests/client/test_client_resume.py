"""Resume: a checkpoint per query; reconnects and restarts (a new process on the same data dir)
send CONNECT_QUERY with ``state`` and get only what they missed; entities that left a query
while the client was away drop out of it, deleted ones disappear; and the bytes that saves.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from triplit_sync import TriplitClient
from triplit_sync.http import HttpClient
from triplit_sync.testing import TriplitTestServer
from triplit_sync.wire.messages import ConnectQuery, EntityData, query_id

from ..conftest import SAMPLE_SCHEMA
from ..support.client import (
    Collector,
    SentLog,
    python_driver,
    server_rows,
    wait_equal_to_server,
)

pytest_plugins = ["tests.support.client_fixtures"]  # make_client, rich

Make = Callable[..., TriplitClient]
OPEN = {"collectionName": "todos", "where": [["completed", "=", False]], "order": [["id", "ASC"]]}
ALL = {"collectionName": "todos", "order": [["id", "ASC"]]}


def todo(i: str, owner: str = "bob", **extra: Any) -> Dict[str, Any]:
    return {"id": i, "text": f"todo {i}", "owner": owner, "completed": False,
            "created_at": "2024-01-01T00:00:00.000Z", **extra}


def insert(server: TriplitTestServer, *entities: Dict[str, Any]) -> None:
    for e in entities:
        status, body = server.post("insert", {"collectionName": "todos", "entity": e})
        assert status == 200, body


class Received:
    """Records the ENTITY_DATA a client gets: which ids came as sets and as deletes."""

    def __init__(self, client: TriplitClient) -> None:
        self.frames: List[EntityData] = []
        original = client._engine.handle_message

        def handle(msg: Any) -> None:
            if isinstance(msg, EntityData):
                self.frames.append(msg)
            original(msg)

        client._engine.handle_message = handle  # type: ignore[method-assign]

    def sets(self) -> List[str]:
        return sorted(i for f in self.frames for c in f.changes.values() for i in c["sets"])

    def deletes(self) -> List[str]:
        return sorted(i for f in self.frames for c in f.changes.values() for i in c["deletes"])


def test_each_query_keeps_its_own_checkpoint(triplit: TriplitTestServer, make_client: Make) -> None:
    client = make_client(triplit, triplit.user_token("alice"), storage="sqlite", name="cp")
    one, two = Collector(), Collector()
    client.subscribe(OPEN, one, on_remote_fulfilled=one.on_remote_fulfilled)
    assert one.fulfilled.wait(10)
    first = client._engine.checkpoints()
    assert list(first) == [query_id(OPEN)]
    client.subscribe(ALL, two, on_remote_fulfilled=two.on_remote_fulfilled)
    assert two.fulfilled.wait(10)
    insert(triplit, todo("t1"))
    two.wait_ids(["t1"])
    cps = client._engine.checkpoints()
    assert set(cps) == {query_id(OPEN), query_id(ALL)}
    assert cps[query_id(OPEN)]["timestamp"] > first[query_id(OPEN)]["timestamp"]
    folder = client.folder
    client.close()
    assert folder is not None
    stored = json.loads((folder / "session.json").read_text())
    assert set(stored["checkpoints"]) == {query_id(OPEN), query_id(ALL)}


def test_a_reconnect_asks_only_for_what_was_missed(triplit: TriplitTestServer, make_client: Make) -> None:
    insert(triplit, todo("r10"), todo("r11"), todo("r12"), todo("r14"))
    client = make_client(triplit, triplit.user_token("alice"))
    col = Collector()
    client.subscribe(OPEN, col, on_remote_fulfilled=col.on_remote_fulfilled)
    col.wait_ids(["r10", "r11", "r12", "r14"])
    insert(triplit, todo("r15"))  # one more ENTITY_DATA: the checkpoint moves past the seed
    col.wait_ids(["r10", "r11", "r12", "r14", "r15"])
    client.disconnect()

    http = HttpClient(triplit.url, triplit.service_token())
    http.update("todos", "r10", {"text": "changed"})
    http.update("todos", "r11", {"completed": True})  # leaves the query, still exists
    http.delete("todos", "r12")
    insert(triplit, todo("r13"))
    http.close()

    log = SentLog(client)
    received = Received(client)
    client.connect()
    rows = col.wait_ids(["r10", "r13", "r14", "r15"])
    assert [r["text"] for r in rows if r["id"] == "r10"] == ["changed"]
    (cq,) = [m for m in log.messages if isinstance(m, ConnectQuery)]
    assert cq.state is not None
    assert cq.state["entityIds"] == {"todos": ["r10", "r11", "r12", "r14", "r15"]}
    # r11 as a set: it left the query but exists. r15 may come again: the checkpoint is
    # [ms, 0] of the frame that brought it (PROTOCOL.md §13.1), and on a busy machine the server
    # can stamp r15 and flush that frame in one millisecond.
    assert [eid for eid in received.sets() if eid != "r15"] == ["r10", "r11", "r13"]
    assert received.deletes() == ["r12"]
    assert client._store.get_cached("todos", "r12") is None
    wait_equal_to_server(client, triplit, OPEN, triplit.user_token("alice"), col)


def test_a_fetched_query_resumes_when_fetched_again(triplit: TriplitTestServer, make_client: Make) -> None:
    insert(triplit, todo("t1"), todo("t2"))
    client = make_client(triplit, triplit.user_token("alice"))
    assert [r["id"] for r in client.fetch(ALL, timeout=10)] == ["t1", "t2"]
    insert(triplit, todo("t3"))
    log = SentLog(client)
    assert [r["id"] for r in client.fetch(ALL, policy="remote-first", timeout=10)] == ["t1", "t2", "t3"]
    (cq,) = [m for m in log.messages if isinstance(m, ConnectQuery)]
    assert cq.state is not None and cq.state["entityIds"] == {"todos": ["t1", "t2"]}


def test_a_restarted_process_resumes_from_its_checkpoints(triplit: TriplitTestServer, tmp_path: Path) -> None:
    insert(triplit, todo("r10"), todo("r11"), todo("r12"), todo("r14"))
    token = triplit.user_token("alice")
    options = {"url": triplit.url, "token": token, "storage": "sqlite", "name": "proc",
               "data_dir": str(tmp_path), "schema": str(SAMPLE_SCHEMA)}
    first = python_driver(**options)
    try:
        first.call("subscribe", sub="q", query=OPEN)
        assert first.call("waitFulfilled", sub="q")
        assert len(first.call("results", sub="q")["results"]) == 4
    finally:
        first.close()

    http = HttpClient(triplit.url, triplit.service_token())
    http.update("todos", "r10", {"text": "changed"})
    http.update("todos", "r11", {"completed": True})
    http.delete("todos", "r12")
    insert(triplit, todo("r13"))
    http.close()

    second = python_driver(**options)
    try:
        second.call("subscribe", sub="q", query=OPEN)
        expected = server_rows(triplit, OPEN, token)
        got = second.call("waitResults", sub="q", expected=expected)
        assert got["results"] == expected, got
        stats = second.call("stats")
        (cq,) = stats["connect_queries"]
        assert cq["state"]["entityIds"] == {"todos": ["r10", "r11", "r12", "r14"]}
        sets = sorted({i for f in stats["received"] for i in f["sets"].get("todos", [])})
        deletes = sorted({i for f in stats["received"] for i in f["deletes"].get("todos", [])})
        assert {"r10", "r11", "r13"} <= set(sets) and deletes == ["r12"]
    finally:
        second.close()


def test_resume_after_a_restart_costs_a_fraction_of_a_full_load(
        triplit: TriplitTestServer, tmp_path: Path) -> None:
    """10 000 entities cached, 1% changed while the client was down: < 5% of a full load's bytes."""
    n = 10_000
    http = HttpClient(triplit.url, triplit.service_token())
    started = time.monotonic()
    http.bulk_insert({"todos": [todo(f"e{i:05d}", text=f"entity number {i} with a little text")
                                for i in range(n)]}, no_return=True)
    token = triplit.user_token("alice")
    options = {"url": triplit.url, "token": token, "storage": "sqlite", "name": "big",
               "data_dir": str(tmp_path)}
    timings: Dict[str, float] = {}

    first = python_driver(**options)
    try:
        t = time.monotonic()
        first.call("subscribe", sub="q", query=OPEN)
        assert first.call("waitFulfilled", sub="q", timeout=60)
        timings["full load"] = time.monotonic() - t
        full = first.call("stats")["bytes_received"]
    finally:
        first.close()  # right after the load: the checkpoint is the load's own ENTITY_DATA

    changed = [f"e{i:05d}" for i in range(0, n, 100)]  # 100 entities = 1%
    updated, left, deleted = changed[:70], changed[70:85], changed[85:]
    sets: Dict[str, Any] = {i: {"text": "changed"} for i in updated}
    sets.update({i: {"completed": True} for i in left})
    new = [f"n{i:03d}" for i in range(10)]
    sets.update({i: todo(i) for i in new})
    http.apply_changes({"todos": {"sets": sets, "deletes": set(deleted)}})
    http.close()

    second = python_driver(**options)
    try:
        t = time.monotonic()
        second.call("subscribe", sub="q", query=OPEN)
        expected = server_rows(triplit, OPEN, token)
        got = second.call("waitResults", sub="q", expected=expected, timeout=60)
        timings["resume"] = time.monotonic() - t
        assert got["results"] == expected
        stats = second.call("stats")
    finally:
        second.close()
    resumed = stats["bytes_received"]
    received_sets = {i for f in stats["received"] for i in f["sets"].get("todos", [])}
    received_deletes = {i for f in stats["received"] for i in f["deletes"].get("todos", [])}
    assert received_sets == set(updated) | set(left) | set(new)
    assert received_deletes == set(deleted)
    assert resumed < 0.05 * full, (resumed, full)
    timings["whole test"] = time.monotonic() - started
    print(f"\nresume efficiency: full load {full} B, resume {resumed} B ({100 * resumed / full:.2f}%); "
          + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
