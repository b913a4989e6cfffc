"""The transport against a real Triplit server (tests/fixtures/sample-schema.json unless noted)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Callable, Iterator, List

import pytest
import websocket

from tests.support.recorder import Recorder
from triplit_sync.testing import TriplitTestServer, mint_token
from triplit_sync.transport.websocket import ConnectionStatus, StatusChange, WebSocketTransport
from triplit_sync.wire.messages import (
    ChangesAck,
    ChangesMessage,
    ConnectQuery,
    EntityData,
    ErrorMessage,
    Ping,
    Pong,
    Ready,
    SchemaRequest,
    UpdateToken,
    query_id,
)

SAMPLE_SCHEMA = json.loads(open("tests/fixtures/sample-schema.json").read())


def todo(i: int, owner: str = "alice") -> dict:
    return {"id": f"t{i:05d}", "text": f"todo {i}", "completed": False,
            "created_at": "2025-01-01T00:00:00.000Z", "owner": owner}


def insert(tid: str, coll: str = "todos", **fields: Any) -> dict:
    doc = {"id": tid, **fields}
    return {coll: {"sets": {tid: doc}, "deletes": set()}}


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def make(rec: Recorder) -> Iterator[Callable[..., WebSocketTransport]]:
    made: List[WebSocketTransport] = []

    def factory(url: str, token: Any, **kw: Any) -> WebSocketTransport:
        calls: List[int] = []

        def provider() -> Any:
            calls.append(1)
            return token() if callable(token) else token

        kw.setdefault("on_message", rec.on_message)
        kw.setdefault("on_close", rec.on_close)
        kw.setdefault("error_hook", rec.on_error)
        kw.setdefault("ping_interval", None)
        t = WebSocketTransport(url, token_provider=provider, **kw)
        t.provider_calls = calls  # type: ignore[attr-defined]
        t.add_status_listener(rec.on_status)
        made.append(t)
        return t

    yield factory
    for t in made:
        t.close()
    assert not rec.errors, rec.errors


@pytest.fixture(scope="module")
def schemaless() -> Iterator[TriplitTestServer]:
    with TriplitTestServer() as server:
        yield server


def test_ready(triplit: TriplitTestServer, make: Any, rec: Recorder) -> None:
    t = make(triplit.url, triplit.user_token("alice"))
    t.connect()
    assert t.wait_ready(10)
    ready_msg = rec.message(Ready)
    assert ready_msg.client_id == t.client_id
    uuid.UUID(t.client_id)
    assert t.status is ConnectionStatus.OPEN
    assert rec.statuses() == [ConnectionStatus.CONNECTING, ConnectionStatus.OPEN]


def test_ping_pong(triplit: TriplitTestServer, make: Any, rec: Recorder) -> None:
    t = make(triplit.url, triplit.anon_token(), ping_interval=0.2)
    t.connect()
    assert t.wait_ready(10)
    rec.wait(lambda: sum(isinstance(m, Pong) for m in rec.messages) >= 2)  # from the ping thread
    assert t.send(Ping(client_timestamp=123))
    rec.wait(lambda: any(isinstance(m, Pong) and m.client_timestamp == 123 for m in rec.messages))
    pong = next(m for m in rec.messages if isinstance(m, Pong) and m.client_timestamp == 123)
    assert isinstance(pong.server_timestamp, int) and pong.server_timestamp > 1_700_000_000_000


def test_connect_query_is_answered_by_entity_data(
    triplit: TriplitTestServer, make: Any, rec: Recorder
) -> None:
    status, _ = triplit.post("insert", {"collectionName": "todos", "entity": todo(1)})
    assert status == 200
    t = make(triplit.url, triplit.user_token("alice"))
    t.connect()
    assert t.wait_ready(10)
    q = {"collectionName": "todos", "where": [["owner", "=", "alice"]]}
    qid = query_id(q)
    assert t.send(ConnectQuery(qid, q))
    rec.wait(lambda: any(isinstance(m, EntityData) and qid in m.for_queries for m in rec.messages))
    first = next(m for m in rec.messages if isinstance(m, EntityData))
    assert first.changes["todos"]["sets"]["t00001"]["text"] == "todo 1"
    assert first.timestamp[2] == "server"
    # a write over the same socket: acked, then echoed to the live query
    assert t.send(ChangesMessage(insert("t00002", text="live", completed=False,
                                        created_at="2025-01-01T00:00:00.000Z", owner="alice")))
    rec.message(ChangesAck)
    rec.wait(lambda: any(isinstance(m, EntityData) and "t00002" in m.changes.get("todos", {}).get("sets", {})
                         for m in rec.messages))


def test_query_errors_name_the_query(triplit: TriplitTestServer, make: Any, rec: Recorder) -> None:
    t = make(triplit.url, triplit.service_token())
    t.connect()
    assert t.wait_ready(10)
    assert t.send(ConnectQuery("bad", {"collectionName": "nope"}))
    err = rec.message(ErrorMessage)
    assert err.is_query_error and err.query_key == "bad"
    assert err.to_exception().query_id == "bad"  # type: ignore[attr-defined]


def test_a_large_write_goes_out_in_chunks_and_is_acked(
    triplit: TriplitTestServer, make: Any, rec: Recorder
) -> None:
    t = make(triplit.url, triplit.service_token())
    t.connect()
    assert t.wait_ready(10)
    sets = {d["id"]: d for d in (todo(i) for i in range(6000))}
    msg = ChangesMessage({"todos": {"sets": sets, "deletes": set()}})
    before = t.bytes_sent
    assert t.send(msg)
    assert t.bytes_sent - before > 524288  # it really was over the chunk size
    rec.message(ChangesAck, timeout=30)
    status, stats = triplit.post("stats", {})
    assert {"collection": "todos", "numEntities": 6000} in stats


def test_a_bad_token_is_closed_unauthorized_and_not_retried(triplit: TriplitTestServer, make: Any,
                                                            rec: Recorder) -> None:
    t = make(triplit.url, mint_token("not-the-secret", sub="alice"), backoff_initial=0.05)
    t.connect()
    rec.wait(lambda: rec.closes and t.status is ConnectionStatus.CLOSED, timeout=10)
    info = rec.closes[0]
    assert info.type == "UNAUTHORIZED" and info.code == 1008 and not info.retry
    assert info.is_session_error and not info.will_reconnect and not info.was_ready
    assert "signature" in (info.message or "")
    assert t.wait_ready(0.5) is False
    assert t.provider_calls == [1]  # no second attempt
    assert not any(isinstance(m, Ready) for m in rec.messages)


def test_a_bad_update_token_closes_the_session_once(
    triplit: TriplitTestServer, make: Any, rec: Recorder
) -> None:
    t = make(triplit.url, triplit.user_token("alice"))
    t.connect()
    assert t.wait_ready(10)
    assert t.send(UpdateToken(mint_token("wrong", sub="alice")))
    rec.wait(lambda: rec.closes and t.status is ConnectionStatus.CLOSED, timeout=10)
    assert [c.type for c in rec.closes] == ["UNAUTHORIZED"]
    assert rec.closes[0].was_ready and not rec.closes[0].will_reconnect


def test_token_expired_is_reported_and_not_retried(
    triplit: TriplitTestServer, make: Any, rec: Recorder
) -> None:
    t = make(triplit.url, triplit.user_token("alice", expires_in=1.5), ping_interval=0.25)
    t.connect()
    assert t.wait_ready(10)
    rec.wait(lambda: rec.closes and t.status is ConnectionStatus.CLOSED, timeout=10)
    assert rec.closes[0].type == "TOKEN_EXPIRED" and rec.closes[0].code == 1008
    assert not rec.closes[0].will_reconnect


def test_manual_disconnect_on_a_real_server(triplit: TriplitTestServer, make: Any, rec: Recorder) -> None:
    t = make(triplit.url, triplit.anon_token())
    t.connect()
    assert t.wait_ready(10)
    start = time.monotonic()
    t.disconnect()
    assert time.monotonic() - start < 1.0
    assert t.status is ConnectionStatus.CLOSED
    rec.wait(lambda: rec.closes)
    assert rec.closes[0].manual and rec.closes[0].code == 1000  # the server echoed our close


def test_schema_handshake(triplit: TriplitTestServer, make: Any, rec: Recorder) -> None:
    t = make(triplit.url, triplit.service_token(), schema_hash=int(time.time() * 1000) % 2**31,
             schema_provider=lambda: SAMPLE_SCHEMA)
    t.connect()
    assert t.wait_ready(10)
    rec.message(SchemaRequest)


def test_an_incompatible_schema_is_closed_by_the_client(triplit: TriplitTestServer, make: Any,
                                                        rec: Recorder) -> None:
    schema = json.loads(json.dumps(SAMPLE_SCHEMA))
    schema["collections"]["todos"]["schema"]["properties"]["extra"] = {"type": "string", "config": {}}
    t = make(triplit.url, triplit.service_token(), schema_hash=int(time.time() * 1000) % 2**31 + 1,
             schema_provider=lambda: schema, backoff_initial=0.05)
    t.connect()
    rec.wait(lambda: rec.closes and t.status is ConnectionStatus.CLOSED, timeout=10)
    info = rec.closes[0]
    assert info.type == "SCHEMA_MISMATCH" and not info.will_reconnect and not info.was_ready
    assert t.provider_calls == [1]


def test_collection_names_with_dots_survive_the_envelope(schemaless: TriplitTestServer, make: Any,
                                                         rec: Recorder) -> None:
    t = make(schemaless.url, schemaless.service_token())
    t.connect()
    assert t.wait_ready(10)
    q = {"collectionName": "a.b"}
    assert t.send(ConnectQuery(query_id(q), q))
    rec.message(EntityData)
    assert t.send(ChangesMessage(insert("x1", coll="a.b", text="dotted")))
    rec.message(ChangesAck)
    rec.wait(lambda: any(isinstance(m, EntityData) and "x1" in m.changes.get("a.b", {}).get("sets", {})
                         for m in rec.messages))
    status, rows = schemaless.post("fetch", {"query": {"collectionName": "a.b"}})
    assert status == 200 and [r["text"] for r in rows] == ["dotted"]


def test_reconnects_with_backoff_after_the_server_is_killed_and_restarted(
        schemaless: TriplitTestServer, make: Any, rec: Recorder) -> None:
    attempts: List[float] = []

    def on_status(change: StatusChange) -> None:
        if change.status is ConnectionStatus.CONNECTING:
            attempts.append(time.monotonic())

    t = make(
        schemaless.url, schemaless.service_token(), backoff_initial=0.05, backoff_max=0.4, backoff_jitter=0
    )
    t.add_status_listener(on_status)
    t.connect()
    assert t.wait_ready(10)
    first_client = t.client_id
    port = schemaless.port
    schemaless.kill()
    rec.wait(lambda: rec.closes, timeout=10)
    info = rec.closes[0]
    assert info.type is None and info.will_reconnect and info.code == 1006 and not info.manual
    rec.wait(lambda: len(attempts) >= 5, timeout=10)  # failing attempts while the server is down
    gaps = [b - a for a, b in zip(attempts[1:], attempts[2:])]
    for gap, nominal in zip(gaps, [0.1, 0.2, 0.4]):
        assert gap >= nominal * 0.95, gaps
    schemaless.start()
    assert schemaless.port == port
    assert t.wait_ready(15)
    assert t.client_id != first_client
    assert len(rec.closes) == 1  # failed attempts are not connections


def test_the_token_never_reaches_debug_logs(triplit: TriplitTestServer, make: Any, rec: Recorder,
                                            caplog: pytest.LogCaptureFixture) -> None:
    token = triplit.user_token("alice", expires_in=3600)
    fresh = triplit.user_token("alice", expires_in=7200)
    bad = mint_token("wrong-secret", sub="alice")
    secrets = [token, fresh, bad] + [s.rsplit(".", 1)[1] for s in (token, fresh, bad)]
    trace = logging.Handler()
    trace.emit = lambda record: None  # type: ignore[method-assign]
    websocket.enableTrace(True, handler=trace)  # websocket-client then logs the upgrade request
    try:
        with caplog.at_level(logging.DEBUG):
            t = make(triplit.url, token, ping_interval=0.1)
            t.connect()
            assert t.wait_ready(10)
            assert t.send(UpdateToken(fresh))
            rec.wait(lambda: any(isinstance(m, Pong) for m in rec.messages))
            t.reconnect()
            assert t.wait_ready(10)
            t.disconnect()
            b = make(triplit.url, bad)
            b.connect()
            rec.wait(lambda: any(c.type == "UNAUTHORIZED" for c in rec.closes), timeout=10)
            texts = [repr(t), repr(b), repr(UpdateToken(fresh))] + [repr(c) for c in rec.closes]
    finally:
        websocket.enableTrace(False)
    records = caplog.records
    assert any(r.name == "websocket" for r in records), "trace logging did run"
    assert any("token=<redacted>" in r.getMessage() for r in records)
    assert any("UPDATE_TOKEN" in r.getMessage() for r in records)
    for r in records:
        texts.append(r.getMessage())
        if r.exc_info:
            texts.append(logging.Formatter().formatException(r.exc_info))
    for text in texts:
        for s in secrets:
            assert s not in text, text
