"""Generated hostile server frames: garbage, wrong shapes, wrong types for ids, timestamps and
documents, deep nesting, unfinished and malformed chunks.

``frames(rng, qid, n)`` yields ``(kind, frame)`` pairs; ``frame`` is text (a str) or a binary
message (bytes). ``qid`` is the id of a live query of the client, so that ENTITY_DATA frames
aim at state the client really keeps. Every frame is one a real server never sends, but any
peer (or a value a user wrote over HTTP, in the deep-nesting case) can make the client read.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable, Dict, Iterator, List, Tuple, Union

Frame = Union[str, bytes]

META = {"values": {"todos.sets": ["map"], "todos.deletes": ["set"]}, "v": 1}
CHUNK_MB = 8  # size of an unfinished chunk: what a peer can make the client hold


def ts(ms: int = 1_800_000_000_000) -> List[Any]:
    return [ms, 0, "server"]


def good_doc(eid: str) -> Dict[str, Any]:
    return {"id": eid, "text": f"text {eid}", "completed": False, "owner": "mallory",
            "created_at": "2024-01-01T00:00:00.000Z"}


def entity_data(qid: str, sets: Any = None, deletes: Any = None, *, timestamp: Any = None,
                for_queries: Any = None, collection: str = "todos", meta: Any = META) -> str:
    changes = {"json": {collection: {"sets": sets if sets is not None else [],
                                     "deletes": deletes if deletes is not None else []}}, "meta": meta}
    return json.dumps({"type": "ENTITY_DATA", "payload": {
        "changes": changes, "timestamp": timestamp if timestamp is not None else ts(),
        "forQueries": for_queries if for_queries is not None else [qid]}})


def _nested(depth: int, rng: random.Random) -> str:
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    return opener * depth + "1" + closer * depth


def _garbage(rng: random.Random, qid: str, i: int) -> Frame:
    choice = rng.randrange(7)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))  # binary frame
    if choice == 1:
        return "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(1, 200)))
    if choice == 2:
        good = entity_data(qid, [[f"g{i}", good_doc(f"g{i}")]])
        return good[: rng.randrange(1, len(good))]  # truncated JSON
    if choice == 3:
        return b"\xff\xfe{\"type\":\"READY\"}"  # invalid UTF-8
    if choice == 4:
        return ""
    if choice == 5:
        return " " * rng.randrange(1, 5000)
    return "NaN"


def _wrong_top(rng: random.Random, qid: str, i: int) -> Frame:
    return json.dumps(rng.choice([
        [], [1, 2], 42, None, "ENTITY_DATA", True, {}, {"type": 5}, {"type": None, "payload": {}},
        {"type": "ENTITY_DATA"}, {"type": "ENTITY_DATA", "payload": []}, {"type": "ENTITY_DATA", "payload": "x"},
        {"type": "NOPE", "payload": {}}, {"type": "CHANGES_ACK"},
        {"type": "CHANGES_ACK", "payload": {"timestamp": True}},
        {"type": "CHANGES_ACK", "payload": {"timestamp": ["x", 0, "server"]}},
        {"type": "PONG", "payload": [1]}, {"type": "PONG", "payload": {"clientTimestamp": "x"}},
        {"type": "READY", "payload": {"clientId": 7}}, {"type": "ERROR", "payload": []},
        {"type": "ERROR", "payload": {"error": "x", "metadata": [1]}},
        {"type": "ERROR", "payload": {"messageType": "CONNECT_QUERY", "error": {"name": 5},
                                      "metadata": {"queryKey": ["x"]}}},
        {"type": "ERROR", "payload": {"messageType": "CHANGES", "error": None, "metadata": {"failures": "x"}}},
        {"type": "SCHEMA_REQUEST", "payload": 3},
    ]))


def _bad_entity_data(rng: random.Random, qid: str, i: int) -> Frame:
    eid = f"h{i}"
    doc = good_doc(eid)
    variants: List[Callable[[], str]] = [
        lambda: entity_data(qid, [[rng.choice([5, None, "", [1], {"a": 1}, True]), doc]]),  # id of a wrong type
        lambda: entity_data(qid, [[eid, {**doc, "id": eid + "-other"}]]),  # document id differs from its key
        lambda: entity_data(qid, [[eid, {**doc, "id": rng.choice([5, None, True])}]]),
        lambda: entity_data(qid, [["", {**doc, "id": ""}]]),  # the empty id
        lambda: entity_data(qid, [[eid, rng.choice([None, 5, "doc", [1, 2], True])]]),  # not a document
        lambda: entity_data(qid, [[eid, {**doc, "text": rng.choice([5, True, [1], {"x": 1}])}]]),
        lambda: entity_data(qid, [[eid, {**doc, "completed": rng.choice(["yes", 1, None, [True]])}]]),
        lambda: entity_data(qid, [[eid, {**doc, "created_at": rng.choice(
            [True, 5, "not a date", "2024-13-45T99:00:00Z", [2024], {"d": 1}])}]]),
        lambda: entity_data(qid, [[eid, doc]], timestamp=rng.choice(
            [True, False, "ts", -1, [True, 0, "server"], [1, 2], [-5, 0, "server"], [1.5, 0, "s"],
             [10 ** 30, 0, "server"], [1, 0, 5], {"t": 1}, []])),  # the timestamp: a resume checkpoint
        lambda: entity_data(qid, [[eid, doc]], for_queries=rng.choice([qid, 5, [5], [None], {"q": 1}, [[qid]]])),
        lambda: entity_data(qid, rng.choice([{"a": 1}, 5, "x", [1, 2], [[eid]], [[eid, doc, 3]]])),  # sets shape
        lambda: entity_data(qid, deletes=rng.choice([5, "x", [5], [None], [[eid]], {"a": 1}])),  # deletes shape
        lambda: entity_data(qid, [[eid, doc]],
                            meta=rng.choice([None, 5, [], {"values": 5}, {"values": {"todos.sets": 5}}])),
        lambda: entity_data(qid, [[eid, doc]], collection=rng.choice(["", "__proto__", "evil", "x" * 300])),
        lambda: json.dumps({"type": "ENTITY_DATA", "payload": {"changes": rng.choice([None, 5, [], "x", {"json": 5}]),
                                                               "timestamp": ts(), "forQueries": [qid]}}),
    ]
    return rng.choice(variants)()


def _deep(rng: random.Random, qid: str, i: int) -> Frame:
    depth = rng.choice([1100, 3000, 20000, 100000])
    where = rng.randrange(3)
    nested = _nested(depth, rng)
    if where == 0:  # inside a document's value, as any writer could store it
        eid = f"d{i}"
        head = entity_data(qid, [[eid, {**good_doc(eid), "text": "@@"}]])
        return head.replace('"@@"', nested)
    if where == 1:  # the whole frame
        return nested
    frame = json.dumps({"type": "ENTITY_DATA", "payload": {"changes": {"json": {}, "meta": "@@"},
                                                           "timestamp": ts(), "forQueries": [qid]}})
    return frame.replace('"@@"', nested)


def _chunk(rng: random.Random, qid: str, i: int) -> Frame:
    cid = f"c{i}-{rng.randrange(10 ** 9)}"
    choice = rng.randrange(6)
    if choice == 0:  # an unfinished chunk, never completed: memory the client must bound
        size = rng.choice([1, 1024, 1 << 20])
        return json.dumps({"type": "CHUNK", "payload": {"id": cid, "total": 2, "index": 0, "data": "x" * size}})
    if choice == 1:
        return json.dumps({"type": "CHUNK", "payload": rng.choice([
            {"id": cid, "total": "2", "index": 0, "data": "x"}, {"id": cid, "total": 2, "index": -1, "data": "x"},
            {"id": cid, "total": 2, "index": 5, "data": "x"}, {"id": cid, "total": 0, "index": 0, "data": "x"},
            {"id": cid, "total": 10 ** 12, "index": 0, "data": "x"}, {"id": 5, "total": 1, "index": 0, "data": "x"},
            {"id": cid, "total": 1, "index": 0, "data": 5}, {"id": cid, "total": 1, "index": 0},
            {"id": None, "total": None, "index": None, "data": None}, [1, 2], "x"])})
    if choice == 2:  # a complete chunk holding garbage
        return json.dumps({"type": "CHUNK", "payload": {"id": cid, "total": 1, "index": 0, "data": "{not json"}})
    if choice == 3:  # a chunk holding a chunk
        inner = json.dumps({"type": "CHUNK", "payload": {"id": cid + "i", "total": 1, "index": 0, "data": "{}"}})
        return json.dumps({"type": "CHUNK", "payload": {"id": cid, "total": 1, "index": 0, "data": inner}})
    if choice == 4:  # a complete chunk holding a deeply nested frame
        return json.dumps({"type": "CHUNK", "payload": {"id": cid, "total": 1, "index": 0,
                                                        "data": _nested(5000, rng)}})
    # a complete chunk holding a hostile ENTITY_DATA
    return json.dumps({"type": "CHUNK", "payload": {"id": cid, "total": 1, "index": 0,
                                                    "data": _as_text(_bad_entity_data(rng, qid, i))}})


def _as_text(frame: Frame) -> str:
    return frame if isinstance(frame, str) else frame.decode("latin-1")


KINDS: Dict[str, Callable[[random.Random, str, int], Frame]] = {
    "garbage": _garbage,
    "wrong shape": _wrong_top,
    "bad ENTITY_DATA": _bad_entity_data,
    "deep nesting": _deep,
    "chunk": _chunk,
}
WEIGHTS = [20, 15, 45, 5, 15]


def frames(rng: random.Random, qid: str, n: int) -> Iterator[Tuple[str, Frame]]:
    """``n`` hostile frames, mixed by ``WEIGHTS``."""
    names = list(KINDS)
    for i in range(n):
        kind = rng.choices(names, WEIGHTS)[0]
        yield kind, KINDS[kind](rng, qid, i)


def big_unfinished_chunk(i: int) -> str:
    """One ``CHUNK_MB`` MB piece of a two-piece chunk whose other piece never comes."""
    return json.dumps({"type": "CHUNK", "payload": {"id": f"big{i}", "total": 2, "index": 0,
                                                    "data": "y" * (CHUNK_MB << 20)}})
