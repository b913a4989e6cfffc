"""Transport behaviour the real server cannot be made to show, against tests/support/fakeserver.py:
chunked and garbage frames, closes without (or with odd) reasons, a peer that stops reading,
plus the transport's own rules (nothing before READY, reconnect policy, callbacks, threads)."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Iterator, List, Optional

import pytest

from tests.support.fakeserver import FakeConnection, FakeServer
from tests.support.recorder import Recorder
from triplit_sync.errors import ClientClosedError, ProtocolError
from triplit_sync.transport.websocket import (
    ConnectionStatus,
    StatusChange,
    WebSocketTransport,
    build_socket_url,
)
from triplit_sync.wire.frames import chunk_message, encode_message
from triplit_sync.wire.messages import (
    ChangesMessage,
    Close,
    ConnectQuery,
    EntityData,
    ErrorMessage,
    Message,
    Ping,
    Pong,
    Ready,
    SchemaRequest,
)

READY = {"type": "READY", "payload": {"clientId": "fake-client"}}


def entity_data(ids: List[str], query: str = "q1") -> dict:
    return {"type": "ENTITY_DATA", "payload": {
        "changes": {"json": {"todos": {"sets": [[i, {"id": i, "text": "x"}] for i in ids], "deletes": []}},
                    "meta": {"values": {"todos.sets": ["map"], "todos.deletes": ["set"]}, "v": 1}},
        "timestamp": [1, 0, "server"], "forQueries": [query]}}


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as s:
        yield s


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def make(rec: Recorder) -> Iterator[Callable[..., WebSocketTransport]]:
    made: List[WebSocketTransport] = []

    def factory(url: str, **kw: Any) -> WebSocketTransport:
        kw.setdefault("token_provider", rec.token)
        kw.setdefault("on_message", rec.on_message)
        kw.setdefault("on_close", rec.on_close)
        kw.setdefault("error_hook", rec.on_error)
        kw.setdefault("backoff_initial", 0.05)
        kw.setdefault("ping_interval", None)
        t = WebSocketTransport(url, **kw)
        t.add_status_listener(rec.on_status)
        made.append(t)
        return t

    yield factory
    for t in made:
        t.close()
    assert not rec.errors, rec.errors


def wait_until(pred: Callable[[], Any], timeout: float = 5.0) -> None:
    """For conditions nothing signals (a lock being held): re-check every 10 ms."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        tick.wait(0.01)


def ready(t: WebSocketTransport, server: FakeServer) -> FakeConnection:
    t.connect()
    conn = server.accept()
    conn.send_json(READY)
    assert t.wait_ready(5)
    return conn


# ------------------------------------------------------------------ construction and URL


def test_urls_are_rebuilt_from_the_server_url() -> None:
    assert build_socket_url("http://h:1", "T") == "ws://h:1?sync-schema=false&token=T"
    assert build_socket_url("https://h/base", "T", 77) == "wss://h/base?schema=77&sync-schema=false&token=T"
    assert build_socket_url("HTTP://h:1/", "a b") == "ws://h:1/?sync-schema=false&token=a+b"


@pytest.mark.parametrize("url", ["ws://h:1", "ftp://h", "h:1", "http://", ""])
def test_other_schemes_are_rejected_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        WebSocketTransport(url, token_provider=lambda: "t", on_message=lambda m: None)


def test_bad_options_are_rejected_at_construction() -> None:
    ok = dict(token_provider=lambda: "t", on_message=lambda m: None)
    with pytest.raises(ValueError, match="ping_interval"):
        WebSocketTransport("http://h", ping_interval=0, **ok)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backoff"):
        WebSocketTransport("http://h", backoff_initial=5, backoff_max=1, **ok)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="token_provider"):
        WebSocketTransport("http://h", token_provider="t", on_message=print)  # type: ignore[arg-type]


def test_the_token_and_schema_hash_travel_in_the_url(server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url, schema_hash=12345)
    t.connect()
    conn = server.accept()
    assert conn.query == {"schema": "12345", "sync-schema": "false", "token": "tok1"}


# ------------------------------------------------------------------ READY and sending


def test_nothing_is_sent_before_ready(server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url, ping_interval=0.05)
    t.connect()
    conn = server.accept()
    rec.wait(lambda: ConnectionStatus.OPEN in rec.statuses())
    assert t.send(Ping(1)) is False
    assert not t.is_ready and t.client_id is None
    with pytest.raises(TimeoutError):
        conn.ws.recv(0.3)  # no message, no ping
    conn.send_json(READY)
    assert t.wait_ready(5)
    assert t.client_id == "fake-client"
    assert t.send(ConnectQuery("q1", {"collectionName": "todos"}))
    first = conn.recv_json()
    assert first["type"] in ("CONNECT_QUERY", "PING")


def test_ready_is_delivered_after_the_transport_is_ready(
    server: FakeServer, make: Any, rec: Recorder
) -> None:
    seen = []

    def on_message(msg: Message) -> None:
        seen.append((type(msg).__name__, t.is_ready, t.client_id))
        rec.on_message(msg)

    t = make(server.url, on_message=on_message)
    ready(t, server)
    rec.message(Ready)
    assert seen[0] == ("Ready", True, "fake-client")


def test_ping_every_interval_once_ready(server: FakeServer, make: Any) -> None:
    t = make(server.url, ping_interval=0.05)
    conn = ready(t, server)
    pings = []
    for _ in range(3):
        pings.append(conn.recv_json())
        conn.send_json({"type": "PONG", "payload": {"serverTimestamp": 1}})  # else the ping deadline cuts
    assert all(p["type"] == "PING" and isinstance(p["payload"]["clientTimestamp"], int) for p in pings)


def test_no_ping_when_disabled(server: FakeServer, make: Any) -> None:
    t = make(server.url, ping_interval=None)
    conn = ready(t, server)
    with pytest.raises(TimeoutError):
        conn.ws.recv(0.3)
    assert t.send(Ping(5))
    assert conn.recv_json() == {"type": "PING", "payload": {"clientTimestamp": 5}}


def test_websocket_pings_from_the_server_are_answered(server: FakeServer, make: Any) -> None:
    t = make(server.url)
    conn = ready(t, server)
    assert conn.ws.ping(b"are you there").wait(5)


def test_schema_request_is_answered_by_the_transport(server: FakeServer, make: Any, rec: Recorder) -> None:
    schema = {"collections": {"todos": {"schema": {"type": "record", "properties": {}}}}}
    t = make(server.url, schema_hash=9, schema_provider=lambda: schema)
    t.connect()
    conn = server.accept()
    conn.send_json({"type": "SCHEMA_REQUEST", "payload": {}})
    assert conn.recv_json() == {"type": "SCHEMA_RESPONSE", "payload": {"schema": schema}}
    assert not t.is_ready
    conn.send_json(READY)
    assert t.wait_ready(5)
    rec.message(SchemaRequest)


def test_large_messages_go_out_as_chunks(server: FakeServer, make: Any) -> None:
    t = make(server.url, chunk_size=1000)
    conn = ready(t, server)
    msg = ChangesMessage({"todos": {"sets": {f"t{i}": {"id": f"t{i}", "text": "é" * 30} for i in range(100)},
                                    "deletes": set()}})
    assert t.send(msg)
    whole = encode_message(msg)
    pieces = []
    while "".join(p["payload"]["data"] for p in pieces) != whole:
        frame = conn.recv_json()
        assert frame["type"] == "CHUNK"
        pieces.append(frame)
    assert len(pieces) > 5 and {p["payload"]["total"] for p in pieces} == {len(pieces)}
    assert t.bytes_sent >= len(whole.encode())


def test_send_needs_an_encodable_message(server: FakeServer, make: Any) -> None:
    t = make(server.url)
    ready(t, server)
    with pytest.raises(TypeError):
        t.send({"type": "PING"})  # type: ignore[arg-type]


# ------------------------------------------------------------------ incoming frames


def test_chunked_server_frames_are_joined(server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url)
    conn = ready(t, server)
    text = json.dumps(entity_data([f"t{i}" for i in range(50)]))
    chunks = chunk_message(text, 300, chunk_id="srv")
    assert len(chunks) > 3
    for c in reversed(chunks):  # any order, with other traffic in between
        conn.send_text(encode_message(c))
        if c.index == 1:
            conn.send_json({"type": "PONG", "payload": {"serverTimestamp": 1}})
    data = rec.message(EntityData)
    assert len(data.changes["todos"]["sets"]) == 50
    assert rec.message(Pong) == Pong(None, 1)
    assert t.bytes_received > len(text)


@pytest.mark.parametrize("garbage", [b"\x00\x01binary", '{"type":"NOPE","payload":{}}'])
def test_binary_frames_and_unknown_types_are_logged_and_skipped(
        garbage: Any, server: FakeServer, make: Any, rec: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    t = make(server.url)
    conn = ready(t, server)
    with caplog.at_level(logging.WARNING, logger="triplit_sync.transport"):
        if isinstance(garbage, bytes):
            conn.send_bytes(garbage)
        else:
            conn.send_text(garbage)
        conn.send_json(entity_data(["after-garbage"]))
        data = rec.message(EntityData)
    assert "after-garbage" in data.changes["todos"]["sets"]
    assert t.is_ready and not rec.closes
    assert [r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("triplit_sync.transport.")]


@pytest.mark.parametrize(
    "garbage",
    [
        "this is not json",
        "[1,2,3]",
        '{"type":"READY"}',
        '{"type":"ENTITY_DATA","payload":{"changes":{"json":{"todos":{"sets":[["x"]]}}},'
        '"timestamp":[1,0,"s"],"forQueries":[]}}',
        '{"type":"CHUNK","payload":{"id":"c","index":5,"total":2,"data":"x"}}',
        '{"type":"CHUNK","payload":{"id":"c","index":0,"total":1,'
        '"data":"{\\"type\\":\\"CHUNK\\",\\"payload\\":{}}"}}',
    ],
)
def test_a_malformed_frame_is_reported_and_the_connection_resumed(
        garbage: str, server: FakeServer, make: Any, rec: Recorder) -> None:
    # The frame may have been anything (an ack, data): the connection's state can't be trusted.
    t = make(server.url)
    conn = ready(t, server)
    conn.send_text(garbage)
    rec.wait(lambda: rec.closes)
    assert rec.closes[0].will_reconnect and "bad frame" in (rec.closes[0].error or "")
    assert len(rec.errors) == 1 and isinstance(rec.errors[0], ProtocolError)
    rec.errors.clear()
    conn2 = ready(t, server)
    conn2.send_json(entity_data(["after-garbage"]))
    assert "after-garbage" in rec.message(EntityData).changes["todos"]["sets"]


def test_an_on_message_exception_is_reported_and_the_connection_resumed(server: FakeServer, make: Any,
                                                                        rec: Recorder) -> None:
    def on_message(msg: Message) -> None:
        if isinstance(msg, Pong):
            raise RuntimeError("bug in the sync engine")
        rec.on_message(msg)

    t = make(server.url, on_message=on_message)
    conn = ready(t, server)
    conn.send_json({"type": "PONG", "payload": {}})
    rec.wait(lambda: rec.closes)
    assert len(rec.errors) == 1 and "bug in the sync engine" in str(rec.errors[0])
    rec.errors.clear()
    conn2 = ready(t, server)
    conn2.send_json(entity_data(["a"]))
    rec.message(EntityData)


def test_server_errors_reach_on_message(server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url)
    conn = ready(t, server)
    conn.send_json(
        {
            "type": "ERROR",
            "payload": {
                "messageType": "CONNECT_QUERY",
                "error": {"name": "QuerySyncError", "status": 500},
                "metadata": {"queryKey": "q1", "innerError": {"name": "X"}},
            },
        }
    )
    err = rec.message(ErrorMessage)
    assert err.query_key == "q1"


# ------------------------------------------------------------------ closes and reconnects


def test_a_close_without_a_reason_reconnects_with_a_fresh_token(server: FakeServer, make: Any,
                                                                rec: Recorder) -> None:
    t = make(server.url)
    first = ready(t, server)
    assert first.token == "tok1"
    first.close(1000, "")
    second = server.accept()
    assert second.token == "tok2"  # the URL was rebuilt with the provider's current token
    second.send_json(READY)
    assert t.wait_ready(5)
    rec.wait(lambda: len(rec.closes) == 1)
    info = rec.closes[0]
    assert info.type is None and info.retry and info.code == 1000
    assert info.will_reconnect and not info.manual and info.was_ready


def test_a_dropped_socket_reconnects(server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url)
    ready(t, server).drop()
    server.accept().send_json(READY)
    assert t.wait_ready(5)
    assert rec.closes[0].code == 1006 and rec.closes[0].will_reconnect and rec.closes[0].error


@pytest.mark.parametrize("reason,ctype", [("not json at all", "UNKNOWN"), ('{"type":"X","retry":true}', "X")])
def test_unparseable_or_retry_true_reasons_reconnect(reason: str, ctype: str, server: FakeServer, make: Any,
                                                     rec: Recorder) -> None:
    t = make(server.url)
    ready(t, server).close(1000, reason)
    server.accept()
    rec.wait(lambda: rec.closes)
    assert rec.closes[0].type == ctype and rec.closes[0].retry and rec.closes[0].will_reconnect


@pytest.mark.parametrize("ctype", ["UNAUTHORIZED", "TOKEN_EXPIRED", "ROLES_MISMATCH", "SCHEMA_MISMATCH",
                                   "INTERNAL_ERROR"])
def test_session_closes_never_reconnect_even_with_retry_true(ctype: str, server: FakeServer, make: Any,
                                                             rec: Recorder) -> None:
    t = make(server.url)
    ready(t, server).close(1008, json.dumps({"type": ctype, "retry": True}))
    rec.wait(lambda: rec.closes and t.status is ConnectionStatus.CLOSED)
    info = rec.closes[0]
    assert info.type == ctype and not info.will_reconnect and info.code == 1008
    assert info.is_session_error == (ctype != "INTERNAL_ERROR")
    server.assert_no_connection(0.5)  # backoff_initial is 0.05 s: a retry would be here by now
    assert not t.wait_ready(0.1)


def test_a_close_message_without_a_close_frame_is_closed_by_the_client(server: FakeServer, make: Any,
                                                                       rec: Recorder) -> None:
    # SCHEMA_MISMATCH: the 1.1.8 server sends the CLOSE message and leaves the socket open
    t = make(server.url, schema_hash=1)
    t.connect()
    conn = server.accept()
    conn.send_json(
        {"type": "CLOSE", "payload": {"type": "SCHEMA_MISMATCH", "retry": False, "message": "nope"}}
    )
    assert conn.wait_closed(5)
    assert conn.close_code == 1000
    assert json.loads(conn.close_reason or "") == {"type": "SCHEMA_MISMATCH", "retry": False}
    rec.wait(lambda: rec.closes and t.status is ConnectionStatus.CLOSED)
    assert len(rec.closes) == 1
    info = rec.closes[0]
    assert (info.type, info.message, info.will_reconnect, info.was_ready) == (
        "SCHEMA_MISMATCH",
        "nope",
        False,
        False,
    )
    assert not any(isinstance(m, Close) for m in rec.messages)  # reported through on_close only
    server.assert_no_connection(0.3)


def test_a_close_message_then_a_close_frame_is_reported_once(
    server: FakeServer, make: Any, rec: Recorder
) -> None:
    t = make(server.url)
    conn = ready(t, server)
    conn.send_json({"type": "CLOSE", "payload": {"type": "TOKEN_EXPIRED", "retry": False}})
    conn.close(1008, '{"type":"TOKEN_EXPIRED","retry":false}')
    rec.wait(lambda: t.status is ConnectionStatus.CLOSED and rec.closes)
    server.assert_no_connection(0.3)
    assert [c.type for c in rec.closes] == ["TOKEN_EXPIRED"]


def test_backoff_doubles_to_the_cap_with_jitter_below_nominal() -> None:
    t = WebSocketTransport("http://h", token_provider=lambda: "t", on_message=print,
                           backoff_initial=0.25, backoff_max=30, backoff_jitter=0)
    assert [t.backoff_delay(i) for i in range(9)] == [0.25, 0.5, 1, 2, 4, 8, 16, 30, 30]
    t.backoff_jitter = 0.2
    for i in range(9):
        nominal = min(30, 0.25 * 2 ** i)
        assert all(0.8 * nominal <= t.backoff_delay(i) <= nominal for _ in range(20))


def test_reconnect_attempts_back_off_while_the_server_is_down(make: Any, rec: Recorder) -> None:
    server = FakeServer().start()
    port = server.port
    server.stop()  # nothing listens: every attempt fails
    attempts: List[float] = []

    def on_status(change: StatusChange) -> None:
        if change.status is ConnectionStatus.CONNECTING:
            attempts.append(time.monotonic())

    t = make(f"http://127.0.0.1:{port}", backoff_initial=0.05, backoff_max=0.4, backoff_jitter=0)
    t.add_status_listener(on_status)
    t.connect()
    rec.wait(lambda: len(attempts) >= 6, timeout=10)
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    for gap, nominal in zip(gaps, [0.05, 0.1, 0.2, 0.4, 0.4]):
        assert gap >= nominal * 0.95, gaps
    assert not rec.closes  # no socket ever opened: nothing to report through on_close
    with FakeServer(port) as again:  # the server is back on the same port
        again.accept(timeout=5).send_json(READY)
        assert t.wait_ready(5)


def test_backoff_resets_when_a_socket_opens(server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url, backoff_initial=0.05, backoff_max=5, backoff_jitter=0)
    conn = ready(t, server)
    gaps = []
    for _ in range(4):
        start = time.monotonic()
        conn.drop()
        conn = server.accept()
        gaps.append(time.monotonic() - start)
        conn.send_json(READY)
        assert t.wait_ready(5)
    # without the reset the fourth wait would be 0.4 s
    assert gaps[-1] < 0.3, gaps
    assert len(rec.closes) == 4


# ------------------------------------------------------------------ manual control


def test_disconnect_is_manual_closes_with_manual_disconnect_and_does_not_reconnect(
        server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url)
    conn = ready(t, server)
    t.disconnect()
    assert t.status is ConnectionStatus.CLOSED
    assert conn.wait_closed(5)
    assert conn.close_code == 1000
    assert json.loads(conn.close_reason or "") == {"type": "MANUAL_DISCONNECT", "retry": False}
    rec.wait(lambda: rec.closes)
    assert rec.closes[0].manual and not rec.closes[0].will_reconnect
    assert rec.statuses()[-2:] == [ConnectionStatus.CLOSING, ConnectionStatus.CLOSED]
    assert rec.changes[-1].manual
    assert t.send(Ping()) is False
    server.assert_no_connection(0.3)
    t.connect()  # and it can connect again
    server.accept().send_json(READY)
    assert t.wait_ready(5)


def test_reconnect_now_uses_a_fresh_token(server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url, backoff_initial=10)
    old = ready(t, server)
    t.reconnect()
    new = server.accept()
    assert new.token == "tok2"
    assert old.wait_closed(5)
    new.send_json(READY)
    assert t.wait_ready(5)
    rec.wait(lambda: rec.closes)
    assert rec.closes[0].manual and rec.closes[0].will_reconnect
    assert len(rec.closes) == 1


def test_connect_during_a_backoff_tries_at_once(make: Any, rec: Recorder) -> None:
    server = FakeServer().start()
    port = server.port
    server.stop()
    t = make(f"http://127.0.0.1:{port}", backoff_initial=30, backoff_max=30)
    t.connect()
    rec.wait(lambda: ConnectionStatus.CLOSED in rec.statuses())  # first attempt failed, 30 s wait
    with FakeServer(port) as again:
        t.connect()
        again.accept(timeout=5).send_json(READY)
        assert t.wait_ready(5)


def test_disconnect_from_inside_on_message_does_not_deadlock(
    server: FakeServer, make: Any, rec: Recorder
) -> None:
    def on_message(msg: Message) -> None:
        rec.on_message(msg)
        if isinstance(msg, Pong):
            t.disconnect()

    t = make(server.url, on_message=on_message)
    conn = ready(t, server)
    conn.send_json({"type": "PONG", "payload": {}})
    rec.wait(lambda: rec.closes and t.status is ConnectionStatus.CLOSED)
    assert rec.closes[0].manual


def test_connect_from_inside_on_close_starts_a_new_connection(server: FakeServer, make: Any,
                                                              rec: Recorder) -> None:
    def on_close(info: Any) -> None:
        rec.on_close(info)
        if len(rec.closes) == 1:
            t.connect()  # e.g. after refreshing an expired token

    t = make(server.url, on_close=on_close)
    ready(t, server).close(1008, '{"type":"TOKEN_EXPIRED","retry":false}')
    again = server.accept()
    assert again.token == "tok2"
    again.send_json(READY)
    assert t.wait_ready(5)
    assert not rec.closes[0].will_reconnect


def test_no_token_means_no_connection(server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url, token_provider=lambda: None)
    t.connect()
    assert t.wait_ready(5) is False
    assert t.status is ConnectionStatus.CLOSED
    server.assert_no_connection(0.3)


def test_a_failing_token_provider_is_retried(server: FakeServer, make: Any, rec: Recorder,
                                             caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def provider() -> Optional[str]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("refresh endpoint down")
        return "tok-after-retry"

    t = make(server.url, token_provider=provider)
    with caplog.at_level(logging.WARNING, logger="triplit_sync.transport"):
        t.connect()
        conn = server.accept()
    assert conn.token == "tok-after-retry"
    assert any("refresh endpoint down" in r.getMessage() for r in caplog.records)


def test_close_is_final(server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url)
    ready(t, server)
    t.close()
    t.close()
    assert t.closed and t.status is ConnectionStatus.CLOSED
    with pytest.raises(ClientClosedError):
        t.connect()
    with pytest.raises(ClientClosedError):
        t.reconnect()
    assert t.send(Ping()) is False


def test_on_close_runs_once_per_connection_and_status_listeners_see_every_step(
        server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url)
    conn = ready(t, server)
    for _ in range(3):
        conn.close(1001, "")
        conn = server.accept()
        conn.send_json(READY)
        assert t.wait_ready(5)
    rec.wait(lambda: len(rec.closes) == 3)
    S = ConnectionStatus
    assert rec.statuses() == [S.CONNECTING, S.OPEN] + [S.CLOSED, S.CONNECTING, S.OPEN] * 3
    assert all(not c.manual for c in rec.changes)
    assert [c.code for c in rec.closes] == [1001] * 3


def test_remove_a_status_listener(server: FakeServer, make: Any, rec: Recorder) -> None:
    t = make(server.url)
    seen: List[StatusChange] = []
    remove = t.add_status_listener(seen.append)
    ready(t, server)
    remove()
    n = len(seen)
    t.disconnect()
    assert len(seen) == n > 0


def test_loopback_ignores_proxy_settings(
    server: FakeServer, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = FakeServer().start()
    dead_port = dead.port
    dead.stop()  # a proxy address where nothing listens
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{dead_port}")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    for host in ("127.0.0.1", "localhost"):
        t = make(f"http://{host}:{server.port}")
        ready(t, server)
        t.close()


def test_all_threads_are_daemons(server: FakeServer, make: Any) -> None:
    before = set(threading.enumerate())
    t = make(server.url, ping_interval=0.05)
    conn = ready(t, server)
    conn.recv_json()  # a ping: the ping thread runs
    t.disconnect()
    mine = [th for th in set(threading.enumerate()) - before if th.name.startswith("triplit")]
    assert all(th.daemon for th in mine)


# ------------------------------------------------------------------ a peer that stops reading


def big_message(megabytes: int) -> ChangesMessage:
    return ChangesMessage(
        {"blobs": {"sets": {"b": {"id": "b", "data": "x" * (megabytes << 20)}}, "deletes": set()}}
    )


def stalled(server: FakeServer, t: WebSocketTransport) -> FakeConnection:
    """A ready connection whose server stopped reading: its small receive queue is full."""
    conn = ready(t, server)
    for _ in range(4):
        assert t.send(Ping(0))  # unread by the server: its flow control stops reading the socket
    return conn


def test_a_send_to_a_peer_that_stopped_reading_times_out_and_reconnects(make: Any, rec: Recorder) -> None:
    with FakeServer(max_queue=1, rcvbuf=65536) as server:
        t = make(server.url, send_timeout=0.5, chunk_size=None)
        stalled(server, t)
        start = time.monotonic()
        assert t.send(big_message(16)) is False
        assert time.monotonic() - start < 10
        rec.wait(lambda: rec.closes)
        info = rec.closes[0]
        assert info.will_reconnect and "send failed" in (info.error or "")
        server.accept()  # the transport comes back


def test_close_returns_quickly_while_a_sender_is_stuck(make: Any, rec: Recorder) -> None:
    with FakeServer(max_queue=1, rcvbuf=65536) as server:
        t = make(server.url, send_timeout=60, chunk_size=None)
        stalled(server, t)
        result: List[bool] = []
        sender = threading.Thread(target=lambda: result.append(t.send(big_message(16))), daemon=True)
        sender.start()
        wait_until(lambda: t._send_lock.locked())  # the sender is inside the write
        start = time.monotonic()
        t.close(timeout=1.0)
        assert time.monotonic() - start < 1.5
        sender.join(5)
        assert result == [False]
        assert t.status is ConnectionStatus.CLOSED
