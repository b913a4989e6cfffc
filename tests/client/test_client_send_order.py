"""PROTOCOL.md §13.2 on the real server: a CHANGES and a stateful CONNECT_QUERY that reach the
server in one read resurrect the entity that CHANGES deleted.

The scenario is the one that diverged in convergence runs: a live query with a checkpoint, the
connection gone, an entity created on the server meanwhile (so this client never cached it) and
deleted by this client while offline, then a reconnect. A relay between client and server
delivers the client's bytes in 100 ms batches, so the CHANGES and the CONNECT_QUERY the client
sends right after READY reach the server in one read.

What the server then does (measured with an instrumented copy of @triplit/server 1.1.8, memory
storage; see DESIGN.md "Send order"):

1. ``ws`` emits both messages synchronously; both handlers start before either awaits.
2. The query's first answer is computed before the delete lands (the new view's initial fetch,
   or an existing view before the double buffer holds the delete), so it holds x.
3. Its ``bufferEntityData`` takes the resume branch and awaits once per id listed in ``state``
   that is still in the results. The write's re-evaluation (x gone) arrives while that first
   call is still awaiting, so it takes the resume branch too (``serverHasRespondedOnce`` is not
   yet set), which drops the diff: x is never deleted. With 3 or fewer listed ids the first call
   finishes first, the re-evaluation diffs, and the delete goes out (no resurrection).

Why this is deterministic: on memory storage the whole interleaving is one chain of
microtasks (no I/O, no timers), so once both frames are in one read the outcome is fixed by
await counts in the server's code, not by timing or load. The client lists ``CACHED`` ids
(far above the threshold of 4 ids measured). The one thing left to chance is the relay
splitting the two frames across batches, which needs a pause of 100 ms on the client's
thread between two consecutive sends; hence "at least ROUNDS - 1".
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from triplit_sync import TriplitClient
from triplit_sync.sync import engine as sync_module
from triplit_sync.testing import TriplitTestServer
from triplit_sync.wire.messages import ConnectQuery

from ..conftest import SAMPLE_SCHEMA
from ..support.client import Collector, SentLog, normalize, server_rows
from ..support.relay import Relay

TODOS = {"collectionName": "todos", "order": [["id", "ASC"]]}
ROUNDS = 3
CACHED = 30  # entities in the live query that the resumed CONNECT_QUERY lists in its state


def todo(i: str) -> Dict[str, Any]:
    return {"id": i, "text": f"todo {i}", "owner": "alice"}


@pytest.fixture
def relay(triplit: TriplitTestServer) -> Iterator[Relay]:
    with Relay(triplit.port) as r:
        yield r


def run_rounds(triplit: TriplitTestServer, relay: Relay, shared_view: bool) -> Tuple[int, List[List[str]]]:
    """(rounds of ROUNDS after which the client still shows the entity it deleted, the types of
    the messages sent after each reconnect).

    ``shared_view``: another client, connected directly, keeps the identical query subscribed, so
    the server's view outlives each disconnect and the first answer after a reconnect comes from
    that view; otherwise the reconnect creates the view and its initial fetch gives that answer.
    """
    token = triplit.user_token("alice")
    client = TriplitClient(relay.url, token=token, schema=SAMPLE_SCHEMA, storage="memory")
    other: Optional[TriplitClient] = None
    try:
        if shared_view:
            other = TriplitClient(triplit.url, token=token, schema=SAMPLE_SCHEMA, storage="memory")
            watcher = Collector()
            other.subscribe(TODOS, watcher, on_remote_fulfilled=watcher.on_remote_fulfilled)
            assert watcher.fulfilled.wait(10)
        assert client.wait_connected(10)
        with client.transact() as tx:
            for i in range(CACHED):
                tx.insert("todos", todo(f"cached-{i:02d}"))
        col = Collector()
        client.subscribe(TODOS, col, on_remote_fulfilled=col.on_remote_fulfilled)
        assert col.fulfilled.wait(10)
        client.wait_for_sync(10)
        sent = SentLog(client)
        relay.batch_client_to_server(0.1)
        bad = 0
        orders: List[List[str]] = []
        for n in range(ROUNDS):
            x = f"offline-{n}"
            client.disconnect()
            status, body = triplit.post("insert", {"collectionName": "todos", "entity": todo(x)}, token=token)
            assert status == 200, body
            client.delete("todos", x)  # an entity this client never cached
            sent.clear()
            client.connect()
            client.wait_for_sync(10)
            # A sync point: the server sends what it buffered for the reconnect no later than the
            # ENTITY_DATA that brings this write (written over HTTP, so that the marker shows up
            # locally only when that ENTITY_DATA has arrived).
            status, body = triplit.post("insert", {"collectionName": "todos", "entity": todo(f"marker-{n}")},
                                        token=token)
            assert status == 200, body
            col.wait(lambda rows: any(r["id"] == f"marker-{n}" for r in rows))
            orders.append([t for t in sent.types() if t in ("CHANGES", "CONNECT_QUERY", "PING")])
            resumed = [m for m in sent.messages if isinstance(m, ConnectQuery) and m.state]
            assert resumed, "the reconnect sent no stateful CONNECT_QUERY: nothing to race"
            listed = set(resumed[0].state["entityIds"]["todos"])  # type: ignore[index]
            assert len(listed) >= CACHED and x not in listed, listed

            local = normalize(client.fetch(TODOS, policy="local-only"))
            expected = server_rows(triplit, TODOS, token)
            if any(r["id"] == x for r in local):
                bad += 1
                # Exactly x is back, as it was before the delete; everything else agrees.
                assert [r for r in local if r["id"] != x] == expected
            else:
                assert local == expected
        return bad, orders
    finally:
        client.close()
        if other is not None:
            other.close()


@pytest.mark.parametrize("shared_view", [False, True], ids=["own-view", "shared-view"])
def test_without_the_send_order_rule_the_server_resurrects_a_deleted_entity(
        triplit: TriplitTestServer, relay: Relay, monkeypatch: pytest.MonkeyPatch, shared_view: bool) -> None:
    """The race is real: this test fails if the relay stops producing it."""
    monkeypatch.setattr(sync_module, "_ENFORCE_SEND_ORDER", False)
    bad, orders = run_rounds(triplit, relay, shared_view)
    for order in orders:  # as the official JS client: the offline write first, then the queries
        assert order[:2] == ["CHANGES", "CONNECT_QUERY"], order
    assert bad >= ROUNDS - 1, f"resurrected in {bad} of {ROUNDS} rounds"


@pytest.mark.parametrize("shared_view", [False, True], ids=["own-view", "shared-view"])
def test_with_the_send_order_rule_nothing_is_resurrected(
        triplit: TriplitTestServer, relay: Relay, shared_view: bool) -> None:
    bad, orders = run_rounds(triplit, relay, shared_view)
    for order in orders:  # the query, its barrier PING, and only after the PONG the write
        assert order.index("CONNECT_QUERY") < order.index("PING") < order.index("CHANGES"), order
    assert bad == 0, f"resurrected in {bad} of {ROUNDS} rounds"
