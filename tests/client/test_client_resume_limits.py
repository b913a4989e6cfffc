"""A resumed query's answer deletes the listed ids that are not in *its* results; other queries
may still hold them (real server)."""

from __future__ import annotations

from typing import Callable

from triplit_sync import TriplitClient
from triplit_sync.http import HttpClient
from triplit_sync.testing import TriplitTestServer

from ..conftest import SAMPLE_SCHEMA
from ..support.client import Collector, wait_equal_to_server

pytest_plugins = ["tests.support.client_fixtures"]  # make_client

ALL = {"collectionName": "todos", "order": [["id", "ASC"]]}
TOP = {"collectionName": "todos", "order": [["created_at", "DESC"]], "limit": 1}


def todo(i: str, day: int) -> dict:
    return {"id": i, "text": i, "owner": "alice", "completed": False, "created_at": f"2024-01-{day:02d}T00:00:00.000Z"}


def test_an_entity_that_left_a_limit_while_offline_stays_in_the_other_queries(
        triplit: TriplitTestServer, make_client: Callable[..., TriplitClient]) -> None:
    token = triplit.user_token("alice")
    with HttpClient(triplit.url, triplit.service_token()) as http:
        http.insert("todos", todo("a", 1))
        http.insert("todos", todo("b", 2))
        client = make_client(triplit, token, schema=SAMPLE_SCHEMA)
        every, top = Collector(), Collector()
        client.subscribe(ALL, every, on_remote_fulfilled=every.on_remote_fulfilled)
        sub = client.subscribe(TOP, top, on_remote_fulfilled=top.on_remote_fulfilled)
        assert every.fulfilled.wait(10) and top.fulfilled.wait(10)
        top.wait_ids(["b"])
        sub.unsubscribe()  # dormant, with its checkpoint and result ids: [b]
        http.insert("todos", todo("c", 3))  # b leaves TOP, and stays in ALL
        http.update("todos", "b", {"text": "b2"})  # changed since TOP's checkpoint
        every.wait(lambda rows: [(r["id"], r["text"]) for r in rows] == [("a", "a"), ("b", "b2"), ("c", "c")])
        top = Collector()
        client.subscribe(TOP, top, on_remote_fulfilled=top.on_remote_fulfilled)  # resumes, listing b
        assert top.fulfilled.wait(10)
        wait_equal_to_server(client, triplit, TOP, token, top)
        wait_equal_to_server(client, triplit, ALL, token, every)
        every.wait_ids(["a", "b", "c"])
