"""end_session and clear against the real server; pending writes keep the identity that made them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, List

import pytest

from tests.support.session import (
    SAMPLE_SCHEMA,
    ClientFactory,
    Events,
    WireSpy,
    client_factory,
)
from triplit_sync.testing import TriplitTestServer
from triplit_sync.transport.websocket import ConnectionStatus


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    yield from client_factory()


def _server_ids(server: TriplitTestServer) -> List[str]:
    status, rows = server.post("fetch", {"query": {"collectionName": "todos"}})
    assert status == 200
    return sorted(r["id"] for r in rows)


def _seed(server: TriplitTestServer, n: int, owner: str = "carol") -> List[str]:
    todos = [{"id": f"seed{i:03d}", "text": f"seed {i}", "completed": False, "owner": owner,
              "created_at": "2025-01-01T00:00:00.000Z"} for i in range(n)]
    status, _ = server.post("bulk-insert?noReturn=true", {"todos": todos})
    assert status == 200
    return [t["id"] for t in todos]


def test_end_session_disconnects_forgets_and_keeps_the_local_database(
        triplit: TriplitTestServer, clients: ClientFactory, tmp_path: Path) -> None:
    seeded = _seed(triplit, 5)
    calls = Events()
    client = clients(triplit.url, triplit.user_token("alice"), schema=SAMPLE_SCHEMA, storage="sqlite",
                     data_dir=tmp_path, name="end", refresh_handler=lambda: calls.add("refresh") or None,
                     refresh_interval=30)
    got = Events()
    client.subscribe(client.query("todos"), got.recorder("rows"))
    got.wait_for(lambda: any(len(v) == 5 for v in got.values("rows")))
    assert client.wait_connected(10)
    # Checkpoints not yet saved (dirty): the close path saves them on the reader thread.
    assert client._engine.checkpoints() and client._engine._checkpoints.dirty
    assert (tmp_path / "end" / "session.json").exists()
    started = time.monotonic()
    client.end_session()
    assert time.monotonic() - started < 0.5  # no stall on the reader thread's checkpoint save
    assert client.session is None
    assert client.connection_status is ConnectionStatus.UNINITIALIZED
    assert not client._sessions.refresher.active
    assert client._engine.checkpoints() == {}
    assert not (tmp_path / "end" / "session.json").exists()
    rows = client.fetch(client.query("todos"), "local-only")
    assert sorted(r["id"] for r in rows) == seeded  # the local database stays
    assert client.fetch(client.query("todos")) == rows  # local-first without a session: local
    assert calls.items == []
    client.end_session()  # a second call is a no-op


def test_pending_writes_stay_with_the_identity_that_made_them(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url, schema=SAMPLE_SCHEMA)
    alice, bob = triplit.user_token("alice"), triplit.user_token("bob")
    client.start_session(alice, auto_connect=False)
    mine = client.insert("todos", {"text": "alice offline", "owner": "alice", "completed": False})
    client.end_session()

    spy = WireSpy(client)
    client.start_session(bob)
    assert client.wait_connected(10)
    theirs = client.insert("todos", {"text": "bob online", "owner": "bob", "completed": False})
    client.wait_for_sync(10)  # bob's own pending writes: acknowledged
    batches = spy.sent("CHANGES")
    assert len(batches) == 1
    assert set(batches[0].changes["todos"]["sets"]) == {theirs["id"]}  # type: ignore[attr-defined]
    assert _server_ids(triplit) == [theirs["id"]]
    assert [p["in_flight"] for p in client.pending_changes()] == [False]  # alice's, waiting

    client.end_session()
    client.start_session(alice)
    client.wait_for_sync(10)
    assert _server_ids(triplit) == sorted([mine["id"], theirs["id"]])
    assert client.pending_changes() == []


def test_an_in_flight_batch_of_another_identity_does_not_block_the_next_one(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url, triplit.user_token("alice"), schema=SAMPLE_SCHEMA, auto_connect=False)
    mine = client.insert("todos", {"text": "alice", "owner": "alice", "completed": False})
    client._store.next_batch(client.session.identity)  # type: ignore[union-attr]  # as if sent, never acked
    assert client.pending_changes()[0]["in_flight"]
    client.end_session()
    client.start_session(triplit.user_token("bob"))
    theirs = client.insert("todos", {"text": "bob", "owner": "bob", "completed": False})
    client.wait_for_sync(10)
    assert _server_ids(triplit) == [theirs["id"]]
    client.end_session()
    client.start_session(triplit.user_token("alice"))
    client.wait_for_sync(10)
    assert _server_ids(triplit) == sorted([mine["id"], theirs["id"]])


def test_clear_empties_the_database_the_outbox_and_the_checkpoints(
        triplit: TriplitTestServer, clients: ClientFactory, tmp_path: Path) -> None:
    _seed(triplit, 3)
    client = clients(triplit.url, triplit.user_token("alice"), schema=SAMPLE_SCHEMA, storage="sqlite",
                     data_dir=tmp_path, name="clear")
    got = Events()
    sub = client.subscribe(client.query("todos"), got.recorder("rows"))
    assert got.wait_for(lambda: any(len(v) == 3 for v in got.values("rows")))
    client.disconnect()
    client.insert("todos", {"text": "pending", "owner": "alice", "completed": False})
    client._engine.flush_checkpoints()
    assert client._engine.checkpoints()
    client.clear()
    assert client.pending_changes() == []
    assert client.fetch(client.query("todos"), "local-only") == []
    assert client._engine.checkpoints() == {}
    assert client.session is not None  # clear is not a logout; end_session is
    # Live subscriptions are filled again from the server, all of it (no resume state).
    client.connect()
    assert got.wait_for(lambda: len(got.values("rows")) >= 3 and len(got.values("rows")[-1]) == 3)
    sub.unsubscribe()
    client.close()
    # Nothing of the old state comes back from disk.
    again = clients(triplit.url, storage="sqlite", data_dir=tmp_path, name="clear", auto_connect=False)
    assert again.pending_changes() == []


def test_end_session_then_clear_is_a_logout(triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url, triplit.user_token("alice"), schema=SAMPLE_SCHEMA, auto_connect=False)
    client.insert("todos", {"text": "pending", "owner": "alice", "completed": False})
    client.end_session()
    client.clear()
    assert client.session is None and client.pending_changes() == []
    assert client.fetch(client.query("todos"), "local-only") == []
