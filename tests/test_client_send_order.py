"""PROTOCOL.md §13.2 on the real server: a CHANGES and a stateful CONNECT_QUERY that reach the
server in one read resurrect the entities that CHANGES deleted.

A relay between client and server delivers the client's bytes in 100 ms batches, so whatever
the client sends close together arrives in one server read, as on a busy server. The scenario is
the one that diverged in convergence runs: a live query with a checkpoint, the connection gone,
an entity created on the server meanwhile (so the client never cached it) and deleted by this
client while offline, then a reconnect. With the send-order rule switched off (as the official
JS client sends) the server answers the resumed query with the entity as it was before the
delete and never takes it back; with the rule on, the local view equals the server's.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator

import pytest

from triplit_sync import TriplitClient
from triplit_sync import sync as sync_module
from triplit_sync.testing import TriplitTestServer

from .client_helpers import Collector, normalize, server_rows, wait_equal_to_server
from .conftest import SAMPLE_SCHEMA
from .relay import Relay

pytest_plugins = ["tests.client_fixtures"]  # make_client

TODOS = {"collectionName": "todos", "order": [["id", "ASC"]]}
ROUNDS = 3


def todo(i: str) -> Dict[str, Any]:
    return {"id": i, "text": f"todo {i}", "owner": "alice"}


@pytest.fixture
def relay(triplit: TriplitTestServer) -> Iterator[Relay]:
    with Relay(triplit.port) as r:
        yield r


def resurrected(triplit: TriplitTestServer, relay: Relay, make_client: Callable[..., TriplitClient]) -> int:
    """Rounds (of ROUNDS) after which the client still shows an entity it deleted."""
    token = triplit.user_token("alice")
    client = make_client(triplit, token, schema=SAMPLE_SCHEMA, url=relay.url) \
        if False else TriplitClient(relay.url, token=token, schema=SAMPLE_SCHEMA, storage="memory")
    try:
        assert client.wait_connected(10)
        client.insert("todos", todo("keep"))
        col = Collector()
        client.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)
        assert col.fulfilled.wait(10)
        client.wait_for_sync(10)
        relay.batch_client_to_server(0.1)
        bad = 0
        for n in range(ROUNDS):
            x = f"offline-{n}"
            client.disconnect()
            status, body = triplit.post("insert", {"collectionName": "todos", "entity": todo(x)}, token=token)
            assert status == 200, body
            client.delete("todos", x)  # an entity this client never cached
            client.connect()
            client.wait_for_sync(10)
            # Let every answer to the reconnect arrive: a later write's ENTITY_DATA comes after them.
            client.insert("todos", todo(f"marker-{n}"))
            client.wait_for_sync(10)
            col.wait(lambda rows: any(r["id"] == f"marker-{n}" for r in rows))
            local = normalize(client.fetch(TODOS, policy="local-only"))
            if any(r["id"] == x for r in local):
                bad += 1
            else:
                assert local == server_rows(triplit, TODOS, token)
        return bad
    finally:
        client.close()


def test_without_the_send_order_rule_the_server_resurrects_a_deleted_entity(
        triplit: TriplitTestServer, relay: Relay, make_client: Callable[..., TriplitClient],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The race is real (this test fails if the relay stops producing it)."""
    monkeypatch.setattr(sync_module, "_ENFORCE_SEND_ORDER", False)
    assert resurrected(triplit, relay, make_client) == ROUNDS


def test_with_the_send_order_rule_nothing_is_resurrected(
        triplit: TriplitTestServer, relay: Relay, make_client: Callable[..., TriplitClient]) -> None:
    assert resurrected(triplit, relay, make_client) == 0
