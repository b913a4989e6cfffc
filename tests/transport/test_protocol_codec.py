"""The message codec against the frames recorded between the JS client and a real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from triplit_sync.errors import ProtocolError, QueryError, ServerError, WriteError
from triplit_sync.wire._envelope import dumps_bytes
from triplit_sync.wire.frames import decode_message, encode_message
from triplit_sync.wire.messages import (
    ChangesAck,
    ChangesMessage,
    Chunk,
    Close,
    ConnectQuery,
    DisconnectQuery,
    EntityData,
    ErrorMessage,
    Message,
    Ping,
    Pong,
    Ready,
    SchemaRequest,
    SchemaResponse,
    UpdateToken,
    decode_changes,
    encode_changes,
)

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"


def trace_frames() -> Iterator[Tuple[str, Dict[str, Any]]]:
    """(file:seq, record) for every complete text frame of every trace."""
    for path in sorted(TRACES.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("kind") == "text" and not rec.get("truncated"):
                rec.setdefault("msg", None)  # a frame that was not JSON keeps only its "text"
                yield f"{path.stem}:{rec['seq']}", rec


FRAMES = list(trace_frames())


def wire_text(msg: Any) -> str:
    """The recorded message as the JS side serialized it (compact, key order kept)."""
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


def test_the_traces_hold_every_message_type() -> None:
    seen = {(rec["dir"], rec["msg"]["type"]) for _, rec in GOOD}
    for t in ("READY", "SCHEMA_REQUEST", "ENTITY_DATA", "CHANGES_ACK", "ERROR", "CLOSE", "PONG"):
        assert ("s2c", t) in seen
    for t in (
        "CONNECT_QUERY",
        "DISCONNECT_QUERY",
        "CHANGES",
        "UPDATE_TOKEN",
        "SCHEMA_RESPONSE",
        "PING",
        "CHUNK",
    ):
        assert ("c2s", t) in seen


def _is_deliberately_bad(msg: Any) -> bool:
    """i_protocol_misc sends the server an unknown type, non-JSON text and a CHANGES without changes."""
    return (
        msg is None
        or msg.get("type") == "FOO"
        or (msg.get("type") == "CHANGES" and "changes" not in msg["payload"])
    )


def _lacks_meta(msg: Any) -> bool:
    return msg.get("type") == "CHANGES" and "meta" not in msg["payload"]["changes"]


GOOD = [f for f in FRAMES if not _is_deliberately_bad(f[1]["msg"])]


@pytest.mark.parametrize("where,rec", GOOD)
def test_every_recorded_frame_decodes(where: str, rec: Dict[str, Any]) -> None:
    msg = decode_message(wire_text(rec["msg"]))
    assert msg.TYPE == rec["msg"]["type"]


@pytest.mark.parametrize("where,rec", [f for f in FRAMES if _is_deliberately_bad(f[1]["msg"])])
def test_the_deliberately_bad_recorded_frames_raise(where: str, rec: Dict[str, Any]) -> None:
    text = rec["text"] if rec["msg"] is None else wire_text(rec["msg"])
    with pytest.raises(ProtocolError):
        decode_message(text)


@pytest.mark.parametrize(
    "where,rec", [f for f in GOOD if f[1]["dir"] == "c2s" and not _lacks_meta(f[1]["msg"])]
)
def test_client_frames_reencode_byte_for_byte(where: str, rec: Dict[str, Any]) -> None:
    text = wire_text(rec["msg"])
    assert len(text.encode()) == rec["bytes"]  # the recording is the real frame
    again = encode_message(decode_message(text))
    if rec["msg"]["type"] == "CHUNK" and rec["label"] == "raw":
        assert json.loads(again) == rec["msg"]  # a hand-written peer, other key order than JS
    else:
        assert again == text


def test_a_recorded_changes_without_meta_gets_meta_when_reencoded() -> None:
    (rec,) = [r for _, r in GOOD if _lacks_meta(r["msg"])]
    again = json.loads(encode_message(decode_message(wire_text(rec["msg"]))))
    assert again["payload"]["changes"]["meta"]["values"] == {"todos.sets": ["map"], "todos.deletes": ["set"]}
    assert again["payload"]["changes"]["json"] == rec["msg"]["payload"]["changes"]["json"]


def test_ready() -> None:
    msg = decode_message('{"type":"READY","payload":{"clientId":"be7c"}}')
    assert msg == Ready("be7c")


def test_entity_data_from_the_subscribe_trace() -> None:
    recs = [r for _, r in GOOD if r["msg"]["type"] == "ENTITY_DATA"
            and r["msg"]["payload"]["changes"]["json"].get("todos", {}).get("sets")]
    raw = recs[0]["msg"]
    msg = decode_message(dumps_bytes(raw))
    assert isinstance(msg, EntityData)
    sets = raw["payload"]["changes"]["json"]["todos"]["sets"]
    assert msg.changes["todos"]["sets"] == {i: d for i, d in sets}
    assert msg.changes["todos"]["deletes"] == set(raw["payload"]["changes"]["json"]["todos"]["deletes"])
    assert msg.timestamp == raw["payload"]["timestamp"]
    assert msg.for_queries == raw["payload"]["forQueries"]


def test_entity_data_deletes_arrive_as_sets() -> None:
    recs = [r["msg"] for _, r in GOOD if r["msg"]["type"] == "ENTITY_DATA"
            and any(c["deletes"] for c in r["msg"]["payload"]["changes"]["json"].values())]
    assert recs, "the traces hold an ENTITY_DATA with deletes"
    msg = decode_message(wire_text(recs[0]))
    assert isinstance(msg, EntityData)
    (coll,) = [c for c, v in recs[0]["payload"]["changes"]["json"].items() if v["deletes"]]
    assert msg.changes[coll]["deletes"] == set(recs[0]["payload"]["changes"]["json"][coll]["deletes"])


def test_changes_ack() -> None:
    assert decode_message('{"type":"CHANGES_ACK","payload":{"timestamp":[17,2,"server"]}}') == ChangesAck(
        [17, 2, "server"]
    )


def test_close_messages_from_the_traces() -> None:
    closes = [decode_message(wire_text(r["msg"])) for _, r in GOOD if r["msg"]["type"] == "CLOSE"]
    types = {c.type for c in closes if isinstance(c, Close)}
    assert {"UNAUTHORIZED", "TOKEN_EXPIRED", "ROLES_MISMATCH", "SCHEMA_MISMATCH"} <= types
    expired = next(c for c in closes if isinstance(c, Close) and c.type == "TOKEN_EXPIRED")
    assert expired.retry is False and expired.message is None and expired.is_session_error
    unauthorized = next(c for c in closes if isinstance(c, Close) and c.type == "UNAUTHORIZED")
    assert "signature" in (unauthorized.message or "")


def test_pong_with_and_without_client_timestamp() -> None:
    assert decode_message('{"type":"PONG","payload":{"clientTimestamp":5,"serverTimestamp":6}}') == Pong(5, 6)
    assert decode_message('{"type":"PONG","payload":{"serverTimestamp":6}}') == Pong(None, 6)


def test_schema_request_without_payload() -> None:
    assert decode_message('{"type":"SCHEMA_REQUEST"}') == SchemaRequest()


# ------------------------------------------------------------------ ERROR helpers


def _errors() -> List[ErrorMessage]:
    out = []
    for _, r in GOOD:
        if r["msg"]["type"] == "ERROR":
            m = decode_message(wire_text(r["msg"]))
            assert isinstance(m, ErrorMessage)
            out.append(m)
    return out


def test_changes_error_helpers() -> None:
    err = next(e for e in _errors() if e.name == "WritePermissionError")
    assert err.is_changes_error and not err.is_query_error
    assert err.failures and err.failures[0]["collection"] == "todos"
    assert json.loads(err.failures[0]["txId"])[2] == "server"
    exc = err.to_exception()
    assert isinstance(exc, WriteError) and exc.name == "WritePermissionError" and exc.status == 401


def test_query_error_helpers() -> None:
    err = next(e for e in _errors() if e.name == "QuerySyncError")
    assert err.is_query_error and err.query_key in ("qx", "qy")
    assert err.inner_error is not None
    exc = err.to_exception()
    assert isinstance(exc, QueryError)
    assert exc.query_id == err.query_key
    assert exc.name == err.inner_error["name"] and exc.name != "QuerySyncError"


def test_malformed_frame_error_has_no_message_type() -> None:
    err = next(e for e in _errors() if e.name == "MalformedMessagePayloadError")
    assert err.message_type is None
    exc = err.to_exception()
    assert isinstance(exc, ServerError) and exc.status == 400


def test_error_without_an_error_object_still_decodes() -> None:
    err = decode_message('{"type":"ERROR","payload":{"messageType":"CHANGES"}}')
    assert isinstance(err, ErrorMessage) and err.name == "TriplitError" and err.failures == []


# ------------------------------------------------------------------ the SuperJSON envelope


def test_encode_changes_marks_every_collection() -> None:
    env = encode_changes({
        "todos": {"sets": {"t1": {"id": "t1", "text": "x"}}, "deletes": {"t9", "t2"}},
        "notes": {"sets": {}, "deletes": set()},
    })
    assert env["json"]["todos"] == {"sets": [("t1", {"id": "t1", "text": "x"})], "deletes": ["t2", "t9"]}
    assert env["json"]["notes"] == {"sets": [], "deletes": []}
    assert env["meta"] == {
        "values": {
            "todos.sets": ["map"],
            "todos.deletes": ["set"],
            "notes.sets": ["map"],
            "notes.deletes": ["set"],
        },
        "v": 1,
    }


def test_encode_changes_escapes_paths_like_superjson_2() -> None:
    env = encode_changes({"a.b": {"sets": {}, "deletes": set()}, "c\\d": {"sets": {}, "deletes": set()}})
    assert set(env["meta"]["values"]) == {"a\\.b.sets", "a\\.b.deletes", "c\\\\d.sets", "c\\\\d.deletes"}
    assert set(env["json"]) == {"a.b", "c\\d"}  # the data keys themselves are not escaped


def test_a_changes_message_always_carries_changes_and_meta() -> None:
    for changes in ({}, {"todos": {"sets": {}, "deletes": set()}}):
        payload = json.loads(encode_message(ChangesMessage(changes)))["payload"]
        assert set(payload) == {"changes"}
        assert "json" in payload["changes"] and "values" in payload["changes"]["meta"]


@pytest.mark.parametrize("bad,match", [
    ([], "mapping"),
    ({"": {"sets": {}}}, "non-empty"),
    ({"todos": []}, "'todos'"),
    ({"todos": {"sets": [["t1", {}]]}}, "'sets'"),
    ({"todos": {"deletes": "t1"}}, "'deletes'"),
    ({"todos": {"deletes": {1}}}, "non-string id"),
    ({"todos": {"sets": {1: {}}}}, "non-string id"),
])
def test_encode_changes_names_the_bad_value(bad: Any, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        encode_changes(bad)


def test_decode_changes_accepts_markers_with_annotations_and_no_meta() -> None:
    env = {
        "json": {
            "todos": {"sets": [["t1", {"id": "t1", "d": "2024-01-01T00:00:00.000Z"}]], "deletes": ["t2"]}
        },
        "meta": {"values": {"todos.sets": ["map", {"0.1.d": ["Date"]}], "todos.deletes": ["set"]}, "v": 1},
    }
    out = decode_changes(env)
    assert out == {
        "todos": {"sets": {"t1": {"id": "t1", "d": "2024-01-01T00:00:00.000Z"}}, "deletes": {"t2"}}
    }
    assert decode_changes({"json": env["json"]}) == out
    assert decode_changes({"json": {}}) == {}


def test_decode_changes_does_not_copy_documents() -> None:
    doc = {"id": "t1"}
    out = decode_changes({"json": {"todos": {"sets": [["t1", doc]], "deletes": []}}})
    assert out["todos"]["sets"]["t1"] is doc


@pytest.mark.parametrize("env,match", [
    ([], "changes must be an object"),
    ({"json": []}, "changes.json"),
    ({"json": {"todos": 1}}, "'todos'"),
    ({"json": {"todos": {"sets": [["t1"]]}}}, "sets of collection 'todos'"),
    ({"json": {"todos": {"sets": 5}}}, "sets of collection 'todos'"),
    ({"json": {"todos": {"deletes": [{}]}}}, "deletes of collection 'todos'"),
    ({"json": {"todos": {"deletes": "t1"}}}, "deletes of collection 'todos'"),
    ({"json": {}, "meta": 3}, "meta"),
])
def test_decode_changes_raises_protocol_errors(env: Any, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        decode_changes(env, frame_type="ENTITY_DATA")
    assert "ENTITY_DATA" in str(info.value)


def test_changes_round_trip() -> None:
    changes = {
        "todos": {
            "sets": {"t1": {"id": "t1", "tags": {"a": True}}, "t2": {"text": "patch"}},
            "deletes": {"t3"},
        }
    }
    msg = decode_message(encode_message(ChangesMessage(changes)))
    assert isinstance(msg, ChangesMessage) and msg.changes == changes


# ------------------------------------------------------------------ malformed frames


@pytest.mark.parametrize(
    "frame,match",
    [
        ("this is not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[1,2]", "not a JSON object"),
        ('{"payload":{}}', "no message type"),
        ('{"type":7}', "no message type"),
        ('{"type":"FOO","payload":{}}', "FOO frame: unknown message type"),
        ('{"type":"READY","payload":[]}', "READY frame: payload is not an object"),
        ('{"type":"READY","payload":{}}', "READY frame: payload has no 'clientId'"),
        ('{"type":"READY","payload":{"clientId":5}}', "READY frame: 'clientId' has the wrong type"),
        (
            '{"type":"ENTITY_DATA","payload":{"timestamp":[1,0,"server"],"forQueries":[]}}',
            "ENTITY_DATA frame: payload has no 'changes'",
        ),
        (
            '{"type":"ENTITY_DATA","payload":{"changes":{"json":{}},"timestamp":[1],"forQueries":[]}}',
            "ENTITY_DATA frame: timestamp",
        ),
        (
            '{"type":"ENTITY_DATA","payload":{"changes":{"json":{}},"timestamp":[1,0,"s"],"forQueries":[1]}}',
            "forQueries",
        ),
        ('{"type":"CHANGES_ACK","payload":{"timestamp":"now"}}', "CHANGES_ACK frame"),
        ('{"type":"CLOSE","payload":{"retry":false}}', "CLOSE frame: payload has no 'type'"),
        ('{"type":"CHUNK","payload":{"id":"x","index":2,"total":2,"data":""}}', "CHUNK frame: index 2"),
        ('{"type":"CHUNK","payload":{"id":"x","index":true,"total":2,"data":""}}', "CHUNK frame: 'index'"),
        ('{"type":"CONNECT_QUERY","payload":{"id":"q","params":{}}}', "CONNECT_QUERY frame"),
    ],
)
def test_malformed_frames_raise_protocol_errors_naming_the_frame(frame: Any, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_message(frame)


def test_protocol_error_messages_never_hold_a_token() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA"
    for frame in (
        f"not json {token}",
        f'{{"type":"{token}"}}',
        f'{{"type":"UPDATE_TOKEN","payload":{{"token":5, "x":"{token}"}}}}',
    ):
        with pytest.raises(ProtocolError) as info:
            decode_message(frame)
        assert token not in str(info.value) and "c2lnbmF0dXJl" not in str(info.value)


# ------------------------------------------------------------------ client messages


def test_client_messages_encode_as_the_protocol_says() -> None:
    def obj(m: Message) -> Any:
        return json.loads(encode_message(m))

    assert obj(ConnectQuery("q1", {"collectionName": "todos"})) == {
        "type": "CONNECT_QUERY", "payload": {"id": "q1", "params": {"collectionName": "todos"}}}
    state = {"timestamp": [1, 0, "server"], "entityIds": {"todos": {"b", "a"}}}
    assert obj(ConnectQuery("q1", {"collectionName": "todos"}, state))["payload"]["state"] == {
        "timestamp": [1, 0, "server"], "entityIds": {"todos": ["a", "b"]}}
    assert obj(DisconnectQuery("q1")) == {"type": "DISCONNECT_QUERY", "payload": {"id": "q1"}}
    assert obj(UpdateToken("tok")) == {"type": "UPDATE_TOKEN", "payload": {"token": "tok"}}
    assert obj(SchemaResponse(None)) == {"type": "SCHEMA_RESPONSE", "payload": {"schema": None}}
    assert obj(Ping()) == {"type": "PING", "payload": {}}
    assert obj(Ping(12)) == {"type": "PING", "payload": {"clientTimestamp": 12}}
    assert obj(Chunk("c", 0, 1, "x")) == {
        "type": "CHUNK",
        "payload": {"data": "x", "total": 1, "index": 0, "id": "c"},
    }


def test_connect_query_rejects_bad_input_at_the_call() -> None:
    with pytest.raises(ValueError, match="id"):
        ConnectQuery("", {"collectionName": "todos"})
    with pytest.raises(ValueError, match="collectionName"):
        ConnectQuery("q", {"where": []})


def test_values_json_cannot_hold_raise_type_error() -> None:
    import datetime

    with pytest.raises(TypeError, match="datetime"):
        encode_message(
            ChangesMessage({"t": {"sets": {"a": {"d": datetime.datetime(2024, 1, 1)}}, "deletes": set()}})
        )
    with pytest.raises(TypeError, match="protocol message"):
        encode_message({"type": "PING"})  # type: ignore[arg-type]


def test_update_token_repr_hides_the_token() -> None:
    assert "secret-token" not in repr(UpdateToken("secret-token"))
    assert "secret-token" not in str(UpdateToken("secret-token"))


# ------------------------------------------------------------------ size


def test_a_large_entity_data_decodes_whole() -> None:
    # Its cost beside plain JSON parsing is the benchmark's "raw reader" ratio (bench/), not a
    # timed bound here.
    sets = [
        [
            f"t{i:05d}",
            {
                "id": f"t{i:05d}",
                "text": f"todo {i}",
                "completed": i % 2 == 0,
                "created_at": "2025-01-01T00:00:00.000Z",
                "tags": {"a": True},
            },
        ]
        for i in range(50000)
    ]
    frame = dumps_bytes({"type": "ENTITY_DATA", "payload": {
        "changes": {"json": {"todos": {"sets": sets, "deletes": []}},
                    "meta": {"values": {"todos.sets": ["map"], "todos.deletes": ["set"]}, "v": 1}},
        "timestamp": [1, 0, "server"], "forQueries": ["q"]}})

    msg = decode_message(frame)
    assert isinstance(msg, EntityData) and len(msg.changes["todos"]["sets"]) == 50000
