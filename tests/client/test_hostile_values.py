"""Values from the real server that the client must survive: a value nested deeper than any
JSON parser recurses, inserted over HTTP by anyone allowed to write, and a value that breaks
the client's schema (the server has none). Subscribers keep working, fetches keep answering."""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from triplit_sync import TriplitClient
from triplit_sync.errors import ProtocolError
from triplit_sync.schema import S, Schema
from triplit_sync.testing import TriplitTestServer, shared_server

from ..support.client import Collector

pytest_plugins = ["tests.support.client_fixtures"]  # make_client

Make = Callable[..., TriplitClient]
TODOS = {"collectionName": "todos", "order": [["id", "ASC"]]}


@pytest.fixture
def schemaless() -> TriplitTestServer:
    server = shared_server(None)
    if not server.running:
        server.start()
    server.reset()
    return server


def post_raw(server: TriplitTestServer, route: str, body: bytes) -> int:
    """POST a JSON body given as text (json.dumps itself recurses on a deep value)."""
    req = urllib.request.Request(
        f"{server.url}/{route}", data=body,
        headers={"Authorization": f"Bearer {server.service_token()}", "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=30) as r:
        return int(r.status)


def insert_deep(server: TriplitTestServer, eid: str, depth: int) -> None:
    body = ('{"collectionName":"todos","entity":{"id":"%s","text":"deep","v":%s}}'
            % (eid, "[" * depth + "1" + "]" * depth)).encode()
    assert post_raw(server, "insert", body) == 200


def test_a_deeply_nested_value_does_not_kill_subscribers(
        schemaless: TriplitTestServer, make_client: Make) -> None:
    clients = [make_client(schemaless, schemaless.user_token(f"u{i}")) for i in range(2)]
    collectors: List[Collector] = []
    for c in clients:
        col = Collector()
        c.subscribe(TODOS, col, on_error=col.on_error)
        col.wait(lambda rows: True)
        collectors.append(col)
    insert_deep(schemaless, "deep", 1100)
    for col in collectors:
        assert isinstance(col.wait_error(), ProtocolError)
    schemaless.post("insert", {"collectionName": "todos", "entity": {"id": "after", "text": "fine"}})
    for c, col in zip(clients, collectors):
        col.wait_ids(["after"])  # the reader lives on and the subscription still updates
        c.insert("todos", {"id": f"own-{id(c)}", "text": "mine"})
        c.wait_for_sync(10)  # and writes still sync
        assert c.connection_status.value == "OPEN"
        assert c.fetch_by_id("todos", "deep", policy="local-only") is None


@pytest.mark.server
def test_a_value_that_breaks_the_client_schema_does_not_break_fetch(
        tmp_path: Path, make_client: Make, caplog: pytest.LogCaptureFixture) -> None:
    # The server holds data its schema does not allow: written while it ran without a schema
    # (a startup schema does not check existing data). Every fetch of the collection used to raise.
    schema = Schema({"todos": {"schema": S.Schema({"id": S.Id(), "text": S.String(),
                                                   "due": S.Optional(S.Date())})}})
    db = tmp_path / "server.sqlite"
    with TriplitTestServer(None, storage="sqlite", db_path=db) as server:
        server.post("insert", {"collectionName": "todos", "entity": {"id": "bad", "text": "x", "due": True}})
        server.post("insert", {"collectionName": "todos",
                               "entity": {"id": "good", "text": "y", "due": "2024-01-01T00:00:00.000Z"}})
    with TriplitTestServer(schema.to_json(), storage="sqlite", db_path=db) as server:
        client = make_client(server, server.user_token("alice"), schema=schema)
        with caplog.at_level(logging.WARNING, logger="triplit_sync.schema"):
            for policy in ("remote-first", "local-only", "local-first"):
                rows = client.fetch(TODOS, policy=policy, timeout=10)
                by_id: Dict[str, Any] = {r["id"]: r for r in rows}
                assert by_id["bad"]["due"] is True  # shown as stored
                assert by_id["good"]["due"].year == 2024
        warnings = [r for r in caplog.records if "todos.due" in r.getMessage()]
        assert len(warnings) <= 1  # once per attribute and process (an earlier test may have had it)
        col = Collector()
        client.subscribe(TODOS, col, on_error=col.on_error)
        col.wait(lambda rows: {r["id"] for r in rows} == {"bad", "good"})
        assert not col.errors
        client.close()
