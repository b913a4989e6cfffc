"""Order indexes (store/_index.py): a query answered from an index returns exactly what a scan
returns, through server changes of every size, pending writes and values of mixed types."""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional

import pytest

from triplit_sync.query import evaluate
from triplit_sync.store import MemoryStore

VALUES: List[Any] = [
    "a", "b", "B", "ab", "é", "\U0001f600", "\ue000", "", "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z",
    0, 1, 1.0, -2.5, 10, True, False, None, {"x": 1}, [1, 2],
]


class Scan:
    """The same documents without an index: the plain scan path of the engine."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def scan(self, collection: str) -> List[Dict[str, Any]]:
        return self.store.scan(collection)

    def get(self, collection: str, eid: str) -> Optional[Dict[str, Any]]:
        return self.store.get(collection, eid)


def _doc(rng: random.Random, eid: str, kinds: List[Any]) -> Dict[str, Any]:
    doc: Dict[str, Any] = {"id": eid, "done": rng.random() < 0.5, "n": rng.randint(0, 5)}
    if rng.random() < 0.9:
        doc["k"] = rng.choice(kinds)
    return doc


def _queries(rng: random.Random) -> List[Dict[str, Any]]:
    out = []
    for _ in range(12):
        q: Dict[str, Any] = {"collectionName": "c", "order": [["k", rng.choice(["ASC", "DESC"])]],
                             "limit": rng.choice([1, 3, 7, 50])}
        if rng.random() < 0.5:
            q["order"].append(["n", rng.choice(["ASC", "DESC"])])
        if rng.random() < 0.2:
            del q["order"]  # candidates in id order: the index on "id"
        if rng.random() < 0.1:
            q.pop("limit", None)
        where = []
        if rng.random() < 0.6:
            where.append(["done", "=", rng.random() < 0.5])
        if rng.random() < 0.3:
            where.append(["n", ">", rng.randint(0, 4)])
        if rng.random() < 0.3:
            where.insert(0, ["k", "=", rng.choice(["a", "é", 1, 1.0, 10, "2026-01-01T00:00:00.000Z"])])
            if rng.random() < 0.5:
                q.pop("limit", None)  # the equality index alone
        if rng.random() < 0.2:
            where.append({"mod": "or", "filters": [["n", "=", 1], ["k", "like", "%a%"]]})
        if where:
            q["where"] = where
        out.append(q)
    return out


def _check(store: MemoryStore, rng: random.Random) -> None:
    for q in _queries(rng):
        assert evaluate(q, store) == evaluate(q, Scan(store)), q


@pytest.mark.parametrize("seed", range(6))
def test_index_answers_like_a_scan(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MemoryStore, "INDEX_MIN_ENTITIES", 0)
    rng = random.Random(seed)
    # Some runs keep to one key kind (the native-compare indexes), others mix every kind.
    kinds = rng.choice([VALUES, VALUES[:4] + VALUES[8:10], [0, 1, 1.0, -2.5, 10], ["a", "é", "b"]])
    store = MemoryStore()
    ids = [f"e{i:03d}" for i in range(300)] + (["é1", "\U0001f600", "\ue000"] if seed % 2 else [])
    store.apply_server_changes({"c": {"sets": {i: _doc(rng, i, kinds) for i in ids}, "deletes": set()}},
                               [1, 0, "server"])
    _check(store, rng)
    for step in range(40):
        sets: Dict[str, Any] = {}
        for eid in rng.sample(ids, rng.choice([1, 2, 5, 100])):
            r = rng.random()
            if r < 0.6:
                sets[eid] = _doc(rng, eid, VALUES if step > 30 else kinds)
            elif r < 0.8:
                sets[eid] = {"k": rng.choice(kinds)}  # a patch (merged)
        deletes = {eid for eid in rng.sample(ids, rng.choice([0, 1, 3])) if eid not in sets}
        store.apply_server_changes({"c": {"sets": sets, "deletes": deletes}}, [2 + step, 0, "server"])
        if rng.random() < 0.3:
            eid = rng.choice(ids)
            local = {"sets": {eid: _doc(rng, eid, kinds)}, "deletes": set()} if rng.random() < 0.7 else \
                {"sets": {}, "deletes": {eid}}
            store.add_local_changes({"c": local}, owner="me")
        _check(store, rng)


def test_small_collections_are_scanned() -> None:
    store = MemoryStore()
    store.apply_server_changes({"c": {"sets": {"a": {"id": "a", "k": 1}}, "deletes": set()}}, [1, 0, "server"])
    assert store.ordered_matches("c", "k", False, None, 10) is None
