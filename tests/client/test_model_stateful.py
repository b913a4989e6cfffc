"""Model-based test: random sequences of every data-API call, disconnects and restarts, against the
real server, with the client's promise checked after every step.

Two clients share a schemaless server: ``mem`` (memory storage; it disconnects and reconnects)
and ``disk`` (SQLite; it is also closed and reopened on the same folder). Hypothesis'
stateful testing picks the calls: insert, update (patch or function), delete, transactions
(committed or rolled back), fetch with every policy, fetch_one, fetch_by_id, subscribe,
unsubscribe, wait_for_sync, disconnect, connect, restart and quiet points.

What is checked:

- **after every step**, for each client: its local results (a ``local-only`` fetch) equal the
  server's answer for its token (``POST /fetch``) with this client's pending writes applied,
  for every entity that only this client ever wrote (another client's writes reach it only
  through its queries, in their own time); its filtered local queries agree with that view;
- **after every fetch**: the rows it returned, in the same sense;
- **at quiet points** (every client connected and synced) and **after a live query is
  fulfilled** at a quiet point: every live query's last delivered rows and the local cache
  equal the server's, in order (every order ends with ``id``: no ties).

CI runs a few short sequences; ``TRIPLIT_SYNC_FULL=1`` runs many long ones.
"""

from __future__ import annotations

import collections
import copy
import os
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from triplit_sync import TriplitClient
from triplit_sync.errors import EntityNotFoundError, TriplitConnectionError
from triplit_sync.testing import TriplitTestServer, shared_server
from triplit_sync.wire.messages import ChangesMessage, ConnectQuery, EntityData

from ..support.client import Collector, normalize, server_rows

FULL = os.environ.get("TRIPLIT_SYNC_FULL") == "1"
SETTINGS = settings(
    max_examples=200 if FULL else 20,
    stateful_step_count=80 if FULL else 40,
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout; a failure prints its steps
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

COLL = "items"
ALL: Dict[str, Any] = {"collectionName": COLL, "order": [["id", "ASC"]]}
Row = Dict[str, Any]
# name -> (query, the same filter in Python, or None for a query with a limit)
QUERIES: Dict[str, Tuple[Dict[str, Any], Optional[Callable[[Row], bool]]]] = {
    "all": (ALL, lambda r: True),
    "big": ({"collectionName": COLL, "where": [["n", ">=", 5]], "order": [["id", "ASC"]]},
            lambda r: isinstance(r.get("n"), int) and r["n"] >= 5),
    "open": ({"collectionName": COLL, "where": [["done", "=", False]], "order": [["id", "ASC"]]},
             lambda r: r.get("done") is False),
    "prio": ({"collectionName": COLL, "where": [["meta.a", ">", 1]], "order": [["id", "DESC"]]},
             lambda r: isinstance(r.get("meta"), dict) and isinstance(r["meta"].get("a"), int)
             and r["meta"]["a"] > 1),
    "top": ({"collectionName": COLL, "order": [["n", "DESC"], ["id", "ASC"]], "limit": 3}, None),
}
POLICIES = ["local-first", "local-only", "remote-first", "local-and-remote", "local-and-remote-wait"]
STATS: Dict[str, int] = {}  # what a run did, printed at its end (pytest -s)
WAIT = 20.0  # seconds: generous for a busy machine; a healthy run never waits this long


# ------------------------------------------------------------------------------ the model


def deep_merge(doc: Row, patch: Row) -> Row:
    out = dict(doc)
    for k, v in patch.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_pending(server: Dict[str, Row], pending: List[Dict[str, Any]]) -> Dict[str, Row]:
    """The server's entities as this client's pending writes (oldest first) would make them.

    An independent statement of the outbox rule: per batch, deletes, then sets; a set without
    ``id`` of a missing entity is an update the server ignores. Applying a write the server has
    already applied changes nothing, so it does not matter whether an in-flight batch arrived.
    ``pending_changes()`` lists one batch's sets before its deletes; consecutive writes with
    the same owner and in-flight flag are one batch (two batches of one owner are never
    adjacent: they would have merged).
    """
    out = copy.deepcopy(server)
    batches: List[List[Dict[str, Any]]] = []
    for write in pending:
        key = (write["owner"], write["in_flight"])
        if batches and (batches[-1][0]["owner"], batches[-1][0]["in_flight"]) == key:
            batches[-1].append(write)
        else:
            batches.append([write])
    for batch in batches:
        mine = [w for w in batch if w["collection"] == COLL]
        for w in mine:
            if w["op"] == "delete":
                out.pop(w["id"], None)
        for w in mine:
            if w["op"] == "delete":
                continue
            patch = w["values"]  # normalized after the merge: a None clears the attribute
            if w["id"] in out:
                out[w["id"]] = normalize(deep_merge(out[w["id"]], patch))
            elif "id" in patch:
                out[w["id"]] = normalize(patch)
    return out


def by_id(rows: List[Row]) -> Dict[str, Row]:
    out = {r["id"]: r for r in rows}
    assert len(out) == len(rows), f"duplicate ids in {rows!r:.2000}"
    return out


class Participant:
    """One client and what the test knows about it."""

    def __init__(self, name: str, server: TriplitTestServer, durable: Optional[Path]) -> None:
        self.name = name
        self.token = server.user_token(name)
        self.server = server
        self.durable = durable
        self.connected = True
        self.live: Dict[str, Tuple[Collector, Any]] = {}
        self.trace: "collections.deque[Any]" = collections.deque(maxlen=60)
        self.client = self._open()

    def _open(self) -> TriplitClient:
        if self.durable is None:
            client = TriplitClient(self.server.url, self.token, storage="memory")
        else:
            client = TriplitClient(self.server.url, self.token, storage="sqlite", name=self.name,
                                   data_dir=self.durable)
        # The last frames in and out: printed with a failure, the first thing to read.
        engine, transport = client._engine, client._transport
        handle, send, ready = engine.handle_message, transport.send, engine.connection_ready

        def traced_handle(msg: Any) -> None:
            self.trace.append(("in", msg))
            handle(msg)

        def traced_send(msg: Any) -> bool:
            self.trace.append(("out", msg))
            return send(msg)

        def traced_ready(_send: Any) -> None:
            self.trace.append(("READY",))
            ready(traced_send)

        engine.handle_message, transport.send = traced_handle, traced_send  # type: ignore[method-assign]
        engine.connection_ready = traced_ready  # type: ignore[method-assign]
        return client

    def dump(self) -> str:
        return "\n".join(f"  {self.name} {t!r:.400}" for t in self.trace)

    def subscribe(self, key: str) -> Collector:
        col = Collector()
        sub = self.client.subscribe(QUERIES[key][0], col, col.on_error, on_remote_fulfilled=col.on_remote_fulfilled)
        self.live[key] = (col, sub)
        return col

    def restart(self) -> None:
        self.client.close()
        self.client = self._open()
        self.connected = True  # a new client connects at once
        for key in list(self.live):
            self.subscribe(key)

    def close(self) -> None:
        self.client.close()


# ------------------------------------------------------------------------------ the machine


class ClientModel(RuleBasedStateMachine):
    server: TriplitTestServer  # set by the test
    folder: Path
    runs = 0

    def __init__(self) -> None:
        super().__init__()
        type(self).runs += 1
        STATS["sequences"] = STATS.get("sequences", 0) + 1
        self.server.reset()
        data_dir = self.folder / f"run{self.runs}"
        self.people: Dict[str, Participant] = {}
        self.people["mem"] = Participant("mem", self.server, None)
        self.people["disk"] = Participant("disk", self.server, data_dir)
        self.ids: List[str] = []
        self.writers: Dict[str, Set[str]] = {}  # entity id -> who ever wrote it
        self.serial = 0

    def teardown(self) -> None:
        for p in self.people.values():
            p.close()

    # ---------------------------------------------------------------- helpers

    def _new_id(self, who: str) -> str:
        self.serial += 1
        eid = f"{who}-{self.serial:03d}"
        self.ids.append(eid)
        return eid

    def _wrote(self, who: str, eid: str) -> None:
        self.writers.setdefault(eid, set()).add(who)

    def _sole(self, who: str) -> Set[str]:
        return {e for e, w in self.writers.items() if w == {who}}

    def _expected(self, p: Participant) -> Dict[str, Row]:
        """Read after the client's own answer: its pending writes, then the server."""
        pending = p.client.pending_changes()
        server = by_id(server_rows(self.server, {"collectionName": COLL}, p.token))
        return apply_pending(server, pending)

    def _check_rows(self, p: Participant, key: str, rows: List[Row], expected: Dict[str, Row]) -> None:
        """``rows`` (the client's answer to query ``key``) agree with ``expected`` on every
        entity only ``p`` wrote."""
        query, pred = QUERIES[key]
        if pred is None:
            return  # a limit: which rows make the cut depends on entities others wrote
        got = {e: r for e, r in by_id(normalize(rows)).items() if e in self._sole(p.name)}
        want = {e: r for e, r in expected.items() if e in self._sole(p.name) and pred(r)}
        assert got == want, (f"{p.name} {key}: local {got!r:.2000} != server+pending {want!r:.2000}\n"
                             f"last frames:\n{p.dump()}")
        ids = [r["id"] for r in normalize(rows)]
        direction = query["order"][-1][1]
        assert ids == sorted(ids, reverse=direction == "DESC") or query["order"][0][0] != "id", ids

    # ---------------------------------------------------------------- writes

    people_names = st.sampled_from(["mem", "disk"])
    patches = st.one_of(
        st.fixed_dictionaries({"n": st.integers(0, 9)}),
        st.fixed_dictionaries({"done": st.booleans()}),
        st.fixed_dictionaries({"s": st.one_of(st.none(), st.text("abc", max_size=3))}),
        st.fixed_dictionaries({"meta": st.fixed_dictionaries({"a": st.integers(0, 3)})}),
        st.fixed_dictionaries({"meta": st.fixed_dictionaries({"b": st.integers(0, 3)})}),
        st.fixed_dictionaries({"n": st.integers(0, 9), "done": st.booleans()}),
    )

    def _doc(self, data: st.DataObject, eid: str) -> Row:
        return {"id": eid, "n": data.draw(st.integers(0, 9)), "done": data.draw(st.booleans()),
                "s": data.draw(st.text("abc", max_size=3)), "meta": {"a": data.draw(st.integers(0, 3))}}

    def _write(self, target: Any, who: str, data: st.DataObject, kind: str) -> None:
        """One write on ``target`` (the client or a transaction)."""
        if kind == "insert" or not self.ids:
            eid = self._new_id(who)
            target.insert(COLL, self._doc(data, eid))
        elif kind == "update":
            eid = data.draw(st.sampled_from(self.ids))
            target.update(COLL, eid, data.draw(self.patches))
        else:
            eid = data.draw(st.sampled_from(self.ids))
            target.delete(COLL, eid)
        self._wrote(who, eid)

    @rule(who=people_names, data=st.data())
    def insert(self, who: str, data: st.DataObject) -> None:
        self._write(self.people[who].client, who, data, "insert")

    @precondition(lambda self: bool(self.ids))
    @rule(who=people_names, data=st.data())
    def update(self, who: str, data: st.DataObject) -> None:
        self._write(self.people[who].client, who, data, "update")

    @precondition(lambda self: bool(self.ids))
    @rule(who=people_names, data=st.data())
    def update_with_function(self, who: str, data: st.DataObject) -> None:
        p = self.people[who]
        eid = data.draw(st.sampled_from(self.ids))
        visible = p.client.fetch_by_id(COLL, eid, policy="local-only")

        def bump(entity: Dict[str, Any]) -> None:
            entity["n"] = (entity.get("n") or 0) + 1

        if visible is None:
            with pytest.raises(EntityNotFoundError):
                p.client.update(COLL, eid, bump)
        else:
            p.client.update(COLL, eid, bump)
            self._wrote(who, eid)

    @precondition(lambda self: bool(self.ids))
    @rule(who=people_names, data=st.data())
    def delete(self, who: str, data: st.DataObject) -> None:
        self._write(self.people[who].client, who, data, "delete")

    @rule(who=people_names, data=st.data(), kinds=st.lists(st.sampled_from(["insert", "update", "delete"]),
                                                           min_size=1, max_size=4),
          fail=st.booleans())
    def transaction(self, who: str, data: st.DataObject, kinds: List[str], fail: bool) -> None:
        p = self.people[who]
        if fail:  # rolled back: nothing changes, locally or anywhere
            before = normalize(p.client.fetch(ALL, policy="local-only"))
            ids, writers, serial = list(self.ids), copy.deepcopy(self.writers), self.serial
            with pytest.raises(ZeroDivisionError):
                with p.client.transact() as tx:
                    for kind in kinds:
                        self._write(tx, who, data, kind)
                    1 / 0
            self.ids, self.writers, self.serial = ids, writers, serial
            # (not pending_changes() == before: an ACK may arrive meanwhile and move nothing visible)
            after = normalize(p.client.fetch(ALL, policy="local-only"))
            sole = self._sole(who)
            assert [r for r in after if r["id"] in sole] == [r for r in before if r["id"] in sole]
            return
        with p.client.transact() as tx:
            for kind in kinds:
                self._write(tx, who, data, kind)

    # ---------------------------------------------------------------- reads

    @rule(who=people_names, key=st.sampled_from(sorted(QUERIES)), policy=st.sampled_from(POLICIES))
    def fetch(self, who: str, key: str, policy: str) -> None:
        p = self.people[who]
        query = QUERIES[key][0]
        if policy == "remote-first" and not p.connected:
            with pytest.raises(TriplitConnectionError):
                p.client.fetch(query, policy=policy, timeout=WAIT)
            return
        if policy == "local-and-remote-wait":
            rows = p.client.fetch(query, policy="local-and-remote", timeout=WAIT)
        else:
            rows = p.client.fetch(query, policy=policy, timeout=WAIT)
        self._check_rows(p, key, rows, self._expected(p))

    @rule(who=people_names, key=st.sampled_from(sorted(QUERIES)),
          policy=st.sampled_from(["local-first", "local-only", "remote-first"]))
    def fetch_one(self, who: str, key: str, policy: str) -> None:
        p = self.people[who]
        if policy == "remote-first" and not p.connected:
            return
        row = p.client.fetch_one(QUERIES[key][0], policy=policy, timeout=WAIT)
        if row is not None and row["id"] in self._sole(who):
            assert normalize(row) == self._expected(p).get(row["id"]), (p.name, key, row)

    @precondition(lambda self: bool(self.ids))
    @rule(who=people_names, data=st.data(), policy=st.sampled_from(["local-first", "local-only", "remote-first"]))
    def fetch_by_id(self, who: str, data: st.DataObject, policy: str) -> None:
        p = self.people[who]
        if policy == "remote-first" and not p.connected:
            return
        eid = data.draw(st.sampled_from(self.ids))
        row = p.client.fetch_by_id(COLL, eid, policy=policy, timeout=WAIT)
        if eid in self._sole(who):
            want = self._expected(p).get(eid)
            assert (normalize(row) if row is not None else None) == want, (p.name, eid)

    @rule(who=people_names, key=st.sampled_from(sorted(QUERIES)))
    def subscribe(self, who: str, key: str) -> None:
        p = self.people[who]
        if key in p.live:
            p.live.pop(key)[1].unsubscribe()
        p.subscribe(key)

    @rule(who=people_names, key=st.sampled_from(sorted(QUERIES)))
    def subscribe_at_quiet_point(self, who: str, key: str) -> None:
        """Once the server has answered, the live query and the cache are the server's."""
        self.quiet_point()
        p = self.people[who]
        if key in p.live:
            p.live.pop(key)[1].unsubscribe()
        col = p.subscribe(key)
        assert col.fulfilled.wait(WAIT), f"{who} {key}: never fulfilled"
        expected = server_rows(self.server, QUERIES[key][0], p.token)
        local = normalize(p.client.fetch(QUERIES[key][0], policy="local-only"))
        assert local == expected, f"{who} {key} fulfilled:\nlocal:  {local!r:.2000}\nserver: {expected!r:.2000}"
        col.wait(lambda rows: normalize(rows) == expected, WAIT)

    @rule(who=people_names, data=st.data())
    def unsubscribe(self, who: str, data: st.DataObject) -> None:
        p = self.people[who]
        if p.live:
            p.live.pop(data.draw(st.sampled_from(sorted(p.live))))[1].unsubscribe()

    # ---------------------------------------------------------------- connection and life

    @rule(who=people_names)
    def wait_for_sync(self, who: str) -> None:
        p = self.people[who]
        if p.connected:
            p.client.wait_for_sync(WAIT)
            assert p.client.pending_changes() == []

    @rule(who=people_names)
    def disconnect(self, who: str) -> None:
        p = self.people[who]
        p.client.disconnect()
        p.connected = False

    @rule(who=people_names)
    def connect(self, who: str) -> None:
        p = self.people[who]
        p.client.connect()
        p.connected = True

    @rule()
    def restart_durable(self) -> None:
        self.people["disk"].restart()

    @rule()
    def quiet_point(self) -> None:
        """Everyone connected and synced: every live query converges to the server's rows."""
        for p in self.people.values():
            if not p.connected:
                p.client.connect()
                p.connected = True
        for p in self.people.values():
            p.client.wait_for_sync(WAIT)
        for p in self.people.values():
            for key, (col, _) in p.live.items():
                converge(p, key, col, self.server)
                STATS["live queries converged"] = STATS.get("live queries converged", 0) + 1

    # ---------------------------------------------------------------- after every step

    @invariant()
    def local_equals_server_plus_pending(self) -> None:
        STATS["steps checked"] = STATS.get("steps checked", 0) + 1
        for p in self.people.values():
            rows = {key: p.client.fetch(QUERIES[key][0], policy="local-only") for key in QUERIES}
            expected = self._expected(p)
            for key, got in rows.items():
                self._check_rows(p, key, got, expected)


def converge(p: Participant, key: str, col: Collector, server: TriplitTestServer) -> None:
    """Wait (on the collector) until its rows and the local cache equal the server's answer."""
    query = QUERIES[key][0]
    deadline = threading.Event()
    timer = threading.Timer(WAIT, deadline.set)
    timer.start()
    try:
        while True:
            expected = server_rows(server, query, p.token)
            with col.cond:
                n, latest = col.count, col.latest
            assert not col.errors, col.errors
            if latest is not None and normalize(latest) == expected:
                local = normalize(p.client.fetch(query, policy="local-only"))
                assert local == expected, f"{p.name} {key}: live rows are the server's, the cache is not"
                return
            if deadline.is_set():
                shown = normalize(latest) if latest is not None else None
                raise AssertionError(f"{p.name} {key}: live rows never equalled the server's\n"
                                     f"live:   {shown!r:.2000}\nserver: {expected!r:.2000}")
            with col.cond:
                col.cond.wait_for(lambda: col.count != n or deadline.is_set(), 0.5)
    finally:
        timer.cancel()


@pytest.fixture
def plain_server() -> Iterator[TriplitTestServer]:
    """The shared schemaless server (anyone may read and write everything)."""
    server = shared_server(None)
    if not server.running:
        server.start()
    yield server


def test_client_model(plain_server: TriplitTestServer, tmp_path: Path) -> None:
    ClientModel.server = plain_server
    ClientModel.folder = tmp_path
    STATS.clear()
    run_state_machine_as_test(ClientModel, settings=SETTINGS)
    print(f"\nmodel: {STATS}")
    assert STATS["steps checked"] >= SETTINGS.max_examples  # it really ran


# ------------------------------------------------------------------------------ what the model found
# Library bugs the model found, reduced to deterministic reproducers (each failed every time
# before its fix: the store's own-write mark, first kept in memory only, and _settle).


@pytest.mark.parametrize("restart", [False, True], ids=["one-process", "after-a-restart"])
def test_an_own_write_that_leaves_every_live_query_stays_local(plain_server: TriplitTestServer, tmp_path: Path,
                                                                restart: bool) -> None:
    """Read-your-writes: a limit pushes this client's own insert out of its only live query;
    the server evicts it (a delete on the wire) but still has it, and so must local reads, also
    when the insert was acknowledged before the process restarted."""
    plain_server.reset()
    top1 = {"collectionName": COLL, "order": [["n", "DESC"], ["id", "ASC"]], "limit": 1}

    def open_client() -> TriplitClient:
        return TriplitClient(plain_server.url, plain_server.user_token("a"), storage="sqlite", name="a",
                             data_dir=tmp_path)

    client = open_client()
    client.insert(COLL, {"id": "x", "n": 5})
    client.wait_for_sync(WAIT)
    if restart:
        client.close()
        client = open_client()
    evicted = threading.Event()
    handle = client._engine.handle_message

    def watch(msg: Any) -> None:
        handle(msg)
        if isinstance(msg, EntityData) and "x" in msg.changes.get(COLL, {}).get("deletes", ()):
            evicted.set()

    client._engine.handle_message = watch  # type: ignore[method-assign]
    try:
        # Acknowledged first, then sent back by the server (in the query's first answer).
        col = Collector()
        client.subscribe(top1, col, on_remote_fulfilled=col.on_remote_fulfilled)
        assert col.fulfilled.wait(WAIT)
        client.insert(COLL, {"id": "y", "n": 9})
        client.wait_for_sync(WAIT)
        assert evicted.wait(WAIT), "the server did not evict x"
        # A round trip after the eviction: a verification the engine sent for x is answered by then.
        client.fetch({"collectionName": COLL, "where": [["id", "=", "barrier"]]}, policy="remote-first",
                     timeout=WAIT)
        assert server_rows(plain_server, ALL) == [{"id": "x", "n": 5}, {"id": "y", "n": 9}]
        assert [r["id"] for r in client.fetch(ALL, policy="local-only")] == ["x", "y"]
    finally:
        client.close()


def test_a_remote_first_fetch_never_returns_what_the_server_deleted(plain_server: TriplitTestServer) -> None:
    """This client's own insert, deleted by another client that never cached it; this client
    asked the server the same query before the insert (so it has a checkpoint for it)."""
    plain_server.reset()
    a = TriplitClient(plain_server.url, plain_server.user_token("a"), storage="memory")
    b = TriplitClient(plain_server.url, plain_server.user_token("b"), storage="memory")
    try:
        assert a.fetch(ALL, policy="local-first", timeout=WAIT) == []  # the server answered: a checkpoint
        a.insert(COLL, {"id": "x", "n": 1})
        a.wait_for_sync(WAIT)
        b.delete(COLL, "x")
        b.wait_for_sync(WAIT)
        assert server_rows(plain_server, ALL) == []
        assert a.fetch(ALL, policy="remote-first", timeout=WAIT) == []
    finally:
        a.close()
        b.close()


def test_a_resubscribed_query_waits_for_its_own_first_answer(plain_server: TriplitTestServer) -> None:
    """Unsubscribe and subscribe again on one connection: the query id is the same, so an
    ENTITY_DATA the server sent for the old subscription (in flight, or flushed from its 10 ms
    buffer after the DISCONNECT_QUERY) looks like the new one's first answer. A CHANGES must
    still wait for the real one (PROTOCOL.md §13.2, _wireorder.py rule 2)."""
    plain_server.reset()
    big = QUERIES["big"][0]
    a = TriplitClient(plain_server.url, plain_server.user_token("a"), storage="memory")
    b = TriplitClient(plain_server.url, plain_server.user_token("b"), storage="memory")
    log: List[Tuple[str, Any]] = []
    held, release = threading.Event(), threading.Event()
    gate: Dict[str, Any] = {"on": False, "msg": None}
    handle, send, ready = a._engine.handle_message, a._transport.send, a._engine.connection_ready

    def gated(msg: Any) -> None:
        if gate["on"] and isinstance(msg, EntityData) and "x" in msg.changes.get(COLL, {}).get("sets", {}):
            gate["on"], gate["msg"] = False, msg
            held.set()
            release.wait(WAIT)
        log.append(("in", msg))
        handle(msg)

    def traced(msg: Any) -> bool:
        log.append(("out", msg))
        return send(msg)

    a._engine.handle_message = gated  # type: ignore[method-assign]
    a._engine.connection_ready = lambda _send: ready(traced)  # type: ignore[method-assign]
    try:
        a.disconnect()
        a.connect()
        for i in range(30):
            a.insert(COLL, {"id": f"y{i:02d}", "n": 5})
        a.wait_for_sync(WAIT)
        col1 = Collector()
        sub1 = a.subscribe(big, col1, on_remote_fulfilled=col1.on_remote_fulfilled)
        assert col1.fulfilled.wait(WAIT)
        gate["on"] = True
        b.insert(COLL, {"id": "x", "n": 6})
        b.wait_for_sync(WAIT)
        assert held.wait(WAIT), "no ENTITY_DATA carried x"
        sub1.unsubscribe()
        col2 = Collector()
        a.subscribe(big, col2, on_remote_fulfilled=col2.on_remote_fulfilled)
        a.update(COLL, "x", {"n": 3})
        release.set()
        a.wait_for_sync(WAIT)
        assert col2.fulfilled.wait(WAIT)
        # The frames after the second CONNECT_QUERY: a CHANGES only after a first answer other
        # than the held (old subscription's) frame.
        connects = [i for i, (d, m) in enumerate(log) if d == "out" and isinstance(m, ConnectQuery)
                    and m.params == big]
        assert len(connects) == 2, connects
        start = connects[-1]
        qid = log[start][1].id
        order = []
        for d, m in log[start:]:
            if d == "out" and isinstance(m, ChangesMessage):
                order.append("CHANGES")
                break
            if d == "in" and isinstance(m, EntityData) and qid in m.for_queries:
                order.append("old" if m is gate["msg"] else "answer")
        assert "answer" in order, f"CHANGES sent before the new query's first answer: {order}"
        assert normalize(col2.latest) == server_rows(plain_server, big)
    finally:
        release.set()
        a.close()
        b.close()
