"""Hostile frames from a server (tests/support/mini_triplit.py) never kill the reader, never put a
malformed entity or checkpoint into the local database, and leave a client that still writes
and fetches. A quick run by default; ``TRIPLIT_SYNC_FULL=1`` sends 10 000 generated frames."""

from __future__ import annotations

import json
import os
import random
import threading
from typing import Any, Callable, Iterator, List, Union

import pytest

from tests.support.mini_triplit import MiniTriplit
from triplit_sync import TriplitClient
from triplit_sync.errors import ProtocolError
from triplit_sync.testing import mint_token
from triplit_sync.wire._chunks import MAX_BYTES, MAX_PENDING
from triplit_sync.wire._deepjson import TOO_DEEP, loads_iterative, parse_frame
from triplit_sync.wire._inbound import too_deep

FULL = os.environ.get("TRIPLIT_SYNC_FULL") == "1"
FRAMES = 10_000 if FULL else 300

Frame = Union[str, bytes]


@pytest.fixture
def server() -> Iterator[MiniTriplit]:
    with MiniTriplit() as s:
        yield s


@pytest.fixture
def client(server: MiniTriplit) -> Iterator[TriplitClient]:
    c = TriplitClient(server.url, token=mint_token("s", sub="alice"), storage="memory", ping_interval=None)
    c._transport.backoff_initial = 0.005  # many reconnects: keep the test quick
    c._transport.backoff_max = 0.05
    try:
        assert c.wait_connected(10)
        yield c
    finally:
        c.close()


class Errors:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.items: List[BaseException] = []

    def __call__(self, e: BaseException) -> None:
        with self.cond:
            self.items.append(e)
            self.cond.notify_all()

    def wait(self, timeout: float = 10.0) -> BaseException:
        with self.cond:
            assert self.cond.wait_for(lambda: self.items, timeout), "no error reported"
            return self.items[-1]


def live_query(client: TriplitClient, server: MiniTriplit) -> tuple:
    errors = Errors()
    ready = threading.Event()
    sub = client.subscribe(client.query("todos"), lambda rows: None, on_error=errors,
                           on_remote_fulfilled=ready.set)
    assert ready.wait(10)
    qid = sub.live.id
    return sub, qid, errors


def rss() -> int:
    """This process's resident memory in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


# ------------------------------------------------------------------ what a sane client holds


def assert_sane(client: TriplitClient) -> None:
    store: Any = client._store
    for coll, table in store._cache.items():
        assert isinstance(coll, str) and coll
        for eid, doc in table.items():
            assert isinstance(eid, str) and eid, eid
            assert type(doc) is dict and doc.get("id") == eid, (eid, doc)
            for v in doc.values():
                assert v is not TOO_DEEP
                if isinstance(v, (dict, list)) and v:
                    assert not too_deep(v)
    for qid, ts in client._engine._checkpoints.stamps.items():
        assert (type(ts) is list and len(ts) == 3 and all(type(x) is int and x >= 0 for x in ts[:2])
                and type(ts[2]) is str), (qid, ts)


_counter = [0]


def assert_works(client: TriplitClient, server: MiniTriplit) -> None:
    """The reader is alive, a write lands on the server, a remote fetch answers."""
    assert client.wait_connected(10), "the client did not get back to READY"
    _counter[0] += 1
    eid = f"probe-{_counter[0]}"
    client.insert("todos", {"id": eid, "text": "still here"})
    client.wait_for_sync(10)
    assert eid in server.entities["todos"]
    rows = client.fetch(client.query("todos").where("id", "=", eid), policy="remote-first", timeout=10)
    assert [r["id"] for r in rows] == [eid]
    client.delete("todos", eid)  # keep the collection small: every resume sends all of it
    client.wait_for_sync(10)
    runner = client._transport._runner
    assert runner is not None and runner.is_alive()
    assert_sane(client)


# ------------------------------------------------------------------ the generator


def _deep(n: int, leaf: str = "1") -> str:
    return "[" * n + leaf + "]" * n


def entity_frame(qid: str, sets: str, deletes: str = "[]", ts: str = '[1,0,"server"]',
                 coll: str = "todos", fq: str = "") -> str:
    fq = fq or json.dumps([qid])
    return ('{"type":"ENTITY_DATA","payload":{"changes":{"json":{%s:{"sets":%s,"deletes":%s}},'
            '"meta":{"v":1}},"timestamp":%s,"forQueries":%s}}' % (json.dumps(coll), sets, deletes, ts, fq))


ODD_FRAMES = ["", "{", "}", "null", "1", '"s"', "NaN", "[]", "{}", '{"type":5}',
              '{"type":"PONG","payload":{"clientTimestamp":"x"}}', '{"type":"ERROR","payload":{"error":5}}',
              '{"type":"READY","payload":{"clientId":7}}', '{"type":"NOPE"}']


def deep_doc(eid: str, attr: str, depth: int, leaf: str) -> str:
    return '[["%s",{"id":"%s","%s":%s}]]' % (eid, eid, attr, _deep(depth, leaf))


BAD_TIMESTAMPS = ['[true,0,"s"]', '[1,false,"s"]', '[1.5,0,"s"]', '[-1,0,"s"]', '["1",0,"s"]',
                  "[1,0,7]", "[1,0]", "null", "{}", '[1,0,"s",4]', _deep(2000)]


def generators(rng: random.Random, qid: str) -> List[Callable[[], Frame]]:
    def eid() -> str:
        return f"h{rng.randrange(10**6)}"

    def good() -> str:
        i = eid()
        return entity_frame(qid, json.dumps([[i, {"id": i, "text": "ok"}]]))

    return [
        lambda: entity_frame(qid, deep_doc(eid(), "v", rng.choice([129, 600, 1100, 3000]), "1")),
        lambda: '{"type":"ENTITY_DATA","payload":' + _deep(rng.choice([900, 1100, 5000]), "{}") + "}",
        lambda: _deep(rng.choice([1100, 20000])),
        lambda: entity_frame(qid, json.dumps([[eid(), {"id": eid(), "text": "wrong id"}]])),
        lambda: entity_frame(qid, '[["",{"id":""}]]'),
        lambda: entity_frame(qid, json.dumps([[eid(), rng.choice([5, "x", [], None, True])]])),
        lambda: entity_frame(qid, json.dumps([[eid(), {"text": "no id"}]])),
        lambda: entity_frame(qid, "[]", deletes=rng.choice(['[1]', '[""]', "[null]", "[{}]", '"x"', "{}"])),
        lambda: entity_frame(qid, "[]", ts=rng.choice(BAD_TIMESTAMPS)),
        lambda: '{"type":"CHANGES_ACK","payload":{"timestamp":%s}}' % rng.choice(BAD_TIMESTAMPS),
        lambda: entity_frame(qid, "[]", fq=rng.choice(['"q"', "[1]", "null", "[[]]"])),
        lambda: entity_frame(qid, rng.choice(['{"a":1}', '"x"', "[[1,2,3]]", '[["a"]]', "[[[], {}]]"])),
        lambda: entity_frame(qid, "[]", coll=""),
        lambda: '{"type":"CHUNK","payload":{"id":"%s","index":0,"total":%d,"data":"%s"}}' % (
            eid(), rng.randint(2, 1000), "x" * rng.choice([10, 100_000, 1_000_000])),
        lambda: '{"type":"CHUNK","payload":{"id":"c","index":%d,"total":%d,"data":"{"}}' % (
            rng.randint(-2, 5), rng.randint(-1, 3)),
        lambda: bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))),
        lambda: good()[: rng.randint(1, 60)],
        lambda: rng.choice(ODD_FRAMES),
        lambda: mutate(rng, good()),
        lambda: '{"type":"PONG","payload":{"clientTimestamp":%d}}' % rng.choice([-1, -99999, 0, 10**20]),
        lambda: '{"type":"ERROR","payload":{"messageType":"CONNECT_QUERY","error":{"name":"X"},'
                '"metadata":{"queryKey":"%s"}}}' % rng.choice(["nope", "", "1"]),
        lambda: entity_frame(qid, deep_doc(eid(), "d", rng.choice([100, 128]), "{}")),  # deep, but allowed
    ]


def mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chars) or 1)
        op = rng.randrange(3) if chars else 2
        if op == 0:
            chars[i] = rng.choice('{}[]",:0a\\')
        elif op == 1:
            del chars[i]
        else:
            chars.insert(i, rng.choice('{}[]",:0a\\'))
    return "".join(chars)


# ------------------------------------------------------------------ tests


def test_generated_hostile_frames_never_kill_the_reader(client: TriplitClient, server: MiniTriplit) -> None:
    rng = random.Random(12)
    sub, qid, _ = live_query(client, server)
    gens = generators(rng, qid)
    start = peak = rss()
    for n in range(FRAMES):
        frame = gens[n % len(gens)]() if n < 3 * len(gens) else rng.choice(gens)()
        server.inject(frame)
        assert_works(client, server)
        peak = max(peak, rss())
    print(f"{FRAMES} frames: {server.connections} connections, RSS +{(peak - start) >> 20} MiB at most")
    assert peak - start < 256 << 20  # nothing piles up (the fake server shares this process)
    sub.unsubscribe()


def test_a_deep_value_drops_its_entity_and_tells_the_subscription(
        client: TriplitClient, server: MiniTriplit) -> None:
    sub, qid, errors = live_query(client, server)
    frame = entity_frame(qid, '[["deep",{"id":"deep","v":%s}],["fine",{"id":"fine"}]]' % _deep(1100))
    assert server.inject(frame)
    error = errors.wait()
    assert isinstance(error, ProtocolError) and "deep" in str(error) and "nested" in str(error)
    assert client.fetch_by_id("todos", "fine", policy="local-only") is not None  # the rest applied
    assert client.fetch_by_id("todos", "deep", policy="local-only") is None
    assert_works(client, server)


@pytest.mark.parametrize("sets", ['[["a",{"id":"b"}]]', '[["",{"id":""}]]', '[["a",5]]'])
def test_entities_of_the_wrong_shape_are_dropped_and_reported(
        sets: str, client: TriplitClient, server: MiniTriplit) -> None:
    sub, qid, errors = live_query(client, server)
    assert server.inject(entity_frame(qid, sets))
    assert isinstance(errors.wait(), ProtocolError)
    assert_works(client, server)  # an id "" would make every later insert raise
    client.insert("todos", {"text": "an id of its own"})


def test_a_bool_in_a_timestamp_never_becomes_a_checkpoint(client: TriplitClient, server: MiniTriplit) -> None:
    sub, qid, _ = live_query(client, server)
    connections = server.connections
    assert server.inject(entity_frame(qid, "[]", ts='[true,0,"server"]'))
    assert_works(client, server)
    assert server.connections == connections + 1  # the frame was not applied: resumed instead
    assert_sane(client)


def test_unfinished_chunks_hold_bounded_memory(client: TriplitClient, server: MiniTriplit) -> None:
    held: List[int] = []
    big = "x" * (8 * 1024 * 1024)
    for i in range(16):
        server.inject('{"type":"CHUNK","payload":{"id":"c%d","index":0,"total":2,"data":"%s"}}' % (i, big))
        assert_works(client, server)
        conn = client._transport._conn
        assert conn is not None
        held.append(sum(len(p) for _, pieces in conn.assembler._pending.values() for p in pieces.values()))
        assert conn.assembler.pending <= MAX_PENDING
    assert max(held) <= MAX_BYTES


# ------------------------------------------------------------------ the parser on its own


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 6 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-10**20, 10**20)
    if kind == 2:
        return rng.uniform(-1e9, 1e9)
    if kind in (3, 4):
        return "".join(rng.choice('ab"\\/\n\u00e9\u20ac\U0001f600{}[],:') for _ in range(rng.randint(0, 8)))
    if kind in (5, 6):
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {str(rng.random()): _random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


def test_the_iterative_parser_agrees_with_the_stdlib() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        value = _random_json(rng)
        text = json.dumps(value, indent=rng.choice([None, 1]), ensure_ascii=rng.random() < 0.5)
        assert loads_iterative(text) == json.loads(text)
        broken = mutate(rng, text) if text else "x"
        try:
            expected = json.loads(broken)
        except ValueError:
            with pytest.raises(ValueError):
                loads_iterative(broken)
        else:
            assert loads_iterative(broken) == expected


def test_parsing_a_frame_never_recurses_without_limit() -> None:
    for depth in (900, 1100, 100_000):
        value = parse_frame(("[" * depth + "]" * depth).encode())
        while isinstance(value, list) and value:
            value = value[0]
        assert value == [] or value is TOO_DEEP  # too deep: cut at MAX_FRAME_DEPTH
    with pytest.raises(ValueError):
        parse_frame(b"[" * 5000)
