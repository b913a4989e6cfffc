"""Query ids (equal to the JS client's), CHUNK framing and token redaction."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Dict, List

import pytest

from triplit_sync._util.redact import redact
from triplit_sync.errors import ProtocolError
from triplit_sync.wire._chunks import ChunkAssembler
from triplit_sync.wire.frames import chunk_message, decode_message, encode_frames, encode_message
from triplit_sync.wire.messages import DEFAULT_CHUNK_SIZE, ChangesMessage, Chunk, Ping, query_id

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"


def recorded_connect_queries() -> List[Dict[str, Any]]:
    """CONNECT_QUERY payloads the JS client sent (ids it computed; hand-written peers use names)."""
    out = []
    for path in sorted(TRACES.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            msg = rec.get("msg")
            if rec.get("dir") == "c2s" and isinstance(msg, dict) and msg.get("type") == "CONNECT_QUERY":
                if msg["payload"]["id"].isdigit():
                    out.append(msg["payload"])
    return out


JS_QUERIES = recorded_connect_queries()


def test_the_traces_hold_several_distinct_js_query_ids() -> None:
    assert len({q["id"] for q in JS_QUERIES}) >= 5


@pytest.mark.parametrize("payload", JS_QUERIES, ids=lambda p: p["id"])
def test_query_ids_equal_the_js_client_ids_recorded_in_the_traces(payload: Dict[str, Any]) -> None:
    # params carry a random traceId and omit unset builder keys; neither changes the id
    assert "traceId" in payload["params"]
    assert query_id(payload["params"]) == payload["id"]


def test_query_id_examples_from_the_protocol_notes() -> None:
    # client.query('todos').Where('owner','=','alice').Limit(2), live-checked
    assert (
        query_id({"collectionName": "todos", "where": [["owner", "=", "alice"]], "limit": 2}) == "4020764441"
    )
    # hashQuery of a hand-written object hashes only the keys present
    assert (
        query_id({"collectionName": "todos", "where": [["done", "=", False]]}, builder=False) == "3583458536"
    )


def test_query_id_ignores_key_order_trace_ids_and_none() -> None:
    q = {"collectionName": "todos", "where": [["a", "=", 1]], "order": [["b", "ASC"]]}
    same = {
        "order": [["b", "ASC"]],
        "traceId": "123",
        "where": [["a", "=", 1]],
        "collectionName": "todos",
        "limit": None,
    }
    assert query_id(q) == query_id(same)
    assert query_id(q) != query_id({**q, "limit": 1})
    assert query_id(q) != query_id({**q, "where": [["a", "=", 2]]})


def test_query_id_names_a_bad_query() -> None:
    with pytest.raises(ValueError, match="collectionName"):
        query_id({"where": []})


# ------------------------------------------------------------------ chunking


def test_small_messages_go_in_one_frame() -> None:
    frames = encode_frames(Ping(1))
    assert frames == [encode_message(Ping(1)).encode()]
    assert DEFAULT_CHUNK_SIZE == 524288


def test_large_messages_are_split_into_chunks_under_the_limit() -> None:
    msg = ChangesMessage({"todos": {"sets": {f"t{i}": {"id": f"t{i}", "text": "x" * 50} for i in range(500)},
                                    "deletes": set()}})
    whole = encode_message(msg)
    frames = encode_frames(msg, chunk_size=4000)
    assert len(frames) == -(-len(whole.encode()) // 4000)
    chunks = [decode_message(f) for f in frames]
    assert all(isinstance(c, Chunk) for c in chunks)
    assert len({c.id for c in chunks}) == 1  # type: ignore[union-attr]
    assert [c.index for c in chunks] == list(range(len(chunks)))  # type: ignore[union-attr]
    assert all(len(c.data.encode()) <= 4000 for c in chunks)  # type: ignore[union-attr]
    assert "".join(c.data for c in chunks) == whole  # type: ignore[union-attr]
    assert encode_frames(msg, chunk_size=None) == [whole.encode()]


def test_chunks_never_cut_a_character() -> None:
    text = json.dumps({"type": "PING", "x": "é日本語😀" * 300}, ensure_ascii=False)
    for limit in (1, 2, 3, 5, 7, 64):
        chunks = chunk_message(text, limit, chunk_id="c")
        assert "".join(c.data for c in chunks) == text
        assert all(c.data for c in chunks)
        assert all(len(c.data.encode()) <= max(limit, 4) for c in chunks)


def test_the_assembler_joins_pieces_in_any_order_and_interleaved() -> None:
    a_text = encode_message(Ping(1)) + " " * 100
    b_text = encode_message(Ping(2)) + " " * 100
    a = chunk_message(a_text, 16, chunk_id="a")
    b = chunk_message(b_text, 16, chunk_id="b")
    pieces = a + b
    random.Random(7).shuffle(pieces)
    asm = ChunkAssembler()
    done = [t for t in (asm.add(p) for p in pieces) if t is not None]
    assert sorted(done) == sorted([a_text, b_text])
    assert asm.pending == 0


def test_the_assembler_rejects_contradicting_pieces() -> None:
    asm = ChunkAssembler()
    assert asm.add(Chunk("x", 0, 3, "a")) is None
    with pytest.raises(ProtocolError, match="contradicts total 3"):
        asm.add(Chunk("x", 1, 2, "b"))
    assert asm.pending == 0


def test_the_assembler_drops_the_oldest_unfinished_message_when_full() -> None:
    asm = ChunkAssembler(max_pending=2)
    asm.add(Chunk("1", 0, 2, "a"))
    asm.add(Chunk("2", 0, 2, "b"))
    with pytest.raises(ProtocolError, match="dropped 1 unfinished"):  # the caller must know
        asm.add(Chunk("3", 0, 2, "c"))
    assert asm.pending == 2
    with pytest.raises(ProtocolError):  # "1" was dropped: this starts it afresh, dropping "2"
        asm.add(Chunk("1", 1, 2, "z"))
    assert asm.add(Chunk("3", 1, 2, "d")) == "cd"


def test_the_assembler_bounds_the_bytes_of_unfinished_messages() -> None:
    asm = ChunkAssembler(max_bytes=10)
    asm.add(Chunk("1", 0, 3, "a" * 6))
    with pytest.raises(ProtocolError):  # 12 bytes: "1" goes, even though it is the only one
        asm.add(Chunk("1", 1, 3, "b" * 6))
    assert asm.pending == 0


def test_the_recorded_chunked_ping_reassembles() -> None:
    lines = (TRACES / "i_protocol_misc.jsonl").read_text().splitlines()
    chunks = [decode_message(json.dumps(r["msg"])) for r in map(json.loads, lines)
              if isinstance(r.get("msg"), dict) and r["msg"].get("type") == "CHUNK"]
    asm = ChunkAssembler()
    results = [asm.add(c) for c in chunks]  # type: ignore[arg-type]
    assert results[0] is None
    assert decode_message(results[1]) == Ping(42)  # type: ignore[arg-type]


def test_chunk_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        chunk_message("x", 0)


# ------------------------------------------------------------------ redaction

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.Qm9ndXNTaWduYXR1cmVGb3JUZXN0aW5nT25seQ"


@pytest.mark.parametrize("text", [
    f"ws://127.0.0.1:1?sync-schema=false&token={JWT}",
    f"ws://h/?token={JWT}&schema=3",
    f'{{"type":"UPDATE_TOKEN","payload":{{"token":"{JWT}"}}}}',
    f"Authorization: Bearer {JWT}",
    f"error while using {JWT}: bad",
    repr(JWT.encode()),
])
def test_redact_removes_tokens(text: str) -> None:
    out = redact(text)
    assert JWT not in out
    assert "Qm9ndXNTaWduYXR1cmVGb3JUZXN0aW5nT25seQ" not in out
    assert "eyJzdWIiOiJhbGljZSJ9" not in out
    assert "<redacted>" in out


def test_redact_removes_opaque_tokens_in_urls_and_fields() -> None:
    assert redact("ws://h?token=opaque-123&x=1") == "ws://h?token=<redacted>&x=1"
    assert redact('{"token":"opaque \\" quoted"}') == '{"token":"<redacted>"}'


def test_redact_keeps_ordinary_text_and_cuts_after_redacting() -> None:
    assert (
        redact("sync connection to http://example.com:6543 closed")
        == "sync connection to http://example.com:6543 closed"
    )
    long = "x" * 50 + " " + JWT + " " + "y" * 500
    out = redact(long, 60)
    assert JWT[:20] not in out and out.startswith("x" * 50 + " <redacte")
    assert out.endswith("more chars]")
