"""The local evaluator against the real server: random queries must give what POST /fetch gives.

Seeded: set TRIPLIT_QUERY_SEED to reproduce a run, TRIPLIT_QUERY_COUNT for more queries. A
failure prints the seed, the query and both answers.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import pytest
from jose import jwt

from triplit_sync.errors import InvalidQueryError
from triplit_sync.query import compile_query, evaluate
from triplit_sync.query._semantics import order_key
from triplit_sync.query.filters import OPERATORS
from triplit_sync.testing import TriplitTestServer

from ..support.query_gen import SCHEMA, QueryGen, encode_doc, generate_data, set_removals

SEED = int(os.environ.get("TRIPLIT_QUERY_SEED", "20261127"))
COUNT = int(os.environ.get("TRIPLIT_QUERY_COUNT", "400"))
CLAIMS = {"x-triplit-token-type": "secret", "team": "t1", "lvl": 3}


class DictSource:
    def __init__(self, docs: Dict[str, Dict[str, Dict[str, Any]]]) -> None:
        self.docs = docs

    def scan(self, collection: str) -> Any:
        return self.docs.get(collection, {}).values()

    def get(self, collection: str, entity_id: str) -> Optional[Dict[str, Any]]:
        return self.docs.get(collection, {}).get(entity_id)


@pytest.fixture(scope="module")
def seeded() -> Iterator[Tuple[TriplitTestServer, str, DictSource]]:
    data = generate_data(SEED)
    with TriplitTestServer(schema=SCHEMA) as server:
        token = server.token(CLAIMS)
        status, body = server.post("bulk-insert?noReturn=true", data, token)
        assert status == 200, body
        docs = {c: {d["id"]: encode_doc(c, d) for d in ds} for c, ds in data.items()}
        for coll, eid, changes in set_removals(SEED, data):
            status, body = server.post("update", {"collectionName": coll, "entityId": eid, "changes": changes}, token)
            assert status == 200, body
            for attr, items in changes.items():
                docs[coll][eid].setdefault(attr, {}).update(items)
        source = DictSource(docs)
        # The server's stored form must be what the source holds (compared serialized).
        for coll in docs:
            status, fetched = server.post("fetch", {"query": {"collectionName": coll}}, token)
            assert status == 200, fetched
            assert len(fetched) == len(docs[coll])
            for doc in fetched:
                assert _norm(doc, coll, None) == _norm(docs[coll][doc["id"]], coll, None, encoded=True), doc
        yield server, token, source


def _norm(doc: Any, coll: str, q: Optional[Mapping[str, Any]], encoded: bool = False) -> Any:
    """A document in a comparable form: sets as sorted lists, optional nulls dropped, includes normalized."""
    if doc is None:
        return None
    props = SCHEMA["collections"][coll]["schema"]["properties"]
    include = (q or {}).get("include") or {}
    out: Dict[str, Any] = {}
    for k, v in doc.items():
        if k in include:
            inc = include[k]
            sub = inc["subquery"]
            if isinstance(v, list):
                out[k] = [_norm(x, sub["collectionName"], sub, encoded) for x in v]
            else:
                out[k] = _norm(v, sub["collectionName"], sub, encoded)
            continue
        out[k] = _norm_value(v, props.get(k), encoded)
        if out[k] is _DROP:
            del out[k]
    return out


_DROP = object()


def _norm_value(v: Any, prop: Optional[Mapping[str, Any]], encoded: bool) -> Any:
    if prop is None:
        return v
    if v is None and (prop.get("config") or {}).get("optional"):
        return _DROP
    if prop["type"] == "set" and v is not None:
        items = prop["items"]["type"]
        if encoded:
            keys = [k for k, alive in v.items() if alive]
            if items == "number":
                vals: List[Any] = [float(k) for k in keys]
            elif items == "boolean":
                vals = [k == "true" for k in keys]
            else:
                vals = keys
        else:
            vals = list(v)
        return sorted(vals, key=order_key)
    if prop["type"] == "record" and isinstance(v, dict):
        out = {}
        for k, x in v.items():
            nx = _norm_value(x, prop["properties"].get(k), encoded)
            if nx is not _DROP:
                out[k] = nx
        return out
    return v


def _session_vars(token: str) -> Dict[str, Any]:
    return {"$session": jwt.get_unverified_claims(token), "$global": {}}


def _compare(server: TriplitTestServer, token: str, source: DictSource, q: Dict[str, Any]) -> str:
    """'ok' or 'both-error'; raises AssertionError with the details otherwise."""
    status, body = server.post("fetch", {"query": q}, token)
    try:
        mine = evaluate(q, source, schema=SCHEMA, variables=_session_vars(token))
        mine_err: Optional[Exception] = None
    except InvalidQueryError as e:
        mine, mine_err = None, e
    detail = f"seed={SEED} query={json.dumps(q)}"
    if status != 200:
        assert mine_err is not None, f"server rejected ({status} {body}) but local evaluation answered {mine!r}; {detail}"
        return "both-error"
    assert mine_err is None, f"local evaluation raised {mine_err!r} but the server answered {body!r}; {detail}"
    prepared = compile_query(q, schema=SCHEMA, variables=_session_vars(token)).prepared
    coll = q["collectionName"]
    got = [_norm(d, coll, prepared, encoded=True) for d in mine]
    want = [_norm(d, coll, prepared) for d in body]
    if got != want:
        ids_got = [d.get("id") for d in got]
        ids_want = [d.get("id") for d in want]
        raise AssertionError(
            f"mismatch; {detail}\n server ids: {ids_want}\n local ids:  {ids_got}\n"
            f" server: {json.dumps(want)[:3000]}\n local:  {json.dumps(got)[:3000]}"
        )
    return "ok"


def _features(q: Any, out: Dict[str, int]) -> None:
    """Count what a query exercises: operators, groups, exists, includes, paging keys."""
    if isinstance(q, list):
        if len(q) == 3 and isinstance(q[0], str) and isinstance(q[1], str) and q[1] in OPERATORS:
            out[q[1]] = out.get(q[1], 0) + 1
        for x in q:
            _features(x, out)
    elif isinstance(q, dict):
        for key in ("mod", "exists", "include", "order", "after", "limit", "select", "vars"):
            if q.get(key) is not None:
                out[key] = out.get(key, 0) + 1
        for v in q.values():
            _features(v, out)


def test_random_queries_match_server(seeded: Tuple[TriplitTestServer, str, DictSource]) -> None:
    server, token, source = seeded
    gen = QueryGen(SEED, generate_data(SEED))
    outcomes: Dict[str, int] = {"ok": 0, "both-error": 0}
    features: Dict[str, int] = {}
    nonempty = 0
    for _ in range(COUNT):
        q = gen.query()
        outcome = _compare(server, token, source, q)
        outcomes[outcome] += 1
        if outcome == "ok":
            status, body = server.post("fetch", {"query": q}, token)
            nonempty += bool(body)
            _features(q, features)
    print(f"seed={SEED} outcomes={outcomes} nonempty={nonempty} features={features}")
    assert outcomes["ok"] >= 300, outcomes
    assert nonempty >= 150, nonempty
    for feature in sorted(OPERATORS) + ["mod", "exists", "include", "order", "after", "limit", "select", "vars"]:
        assert features.get(feature, 0) >= 5, (feature, features)


@pytest.fixture(scope="module")
def seeded_schemaless() -> Iterator[Tuple[TriplitTestServer, str, DictSource]]:
    data = {c: [encode_doc(c, d) for d in ds] for c, ds in generate_data(SEED).items()}
    with TriplitTestServer() as server:
        token = server.token(CLAIMS)
        status, body = server.post("bulk-insert?noReturn=true", data, token)
        assert status == 200, body
        source = DictSource({c: {d["id"]: d for d in ds} for c, ds in data.items()})
        for coll, docs in source.docs.items():
            status, fetched = server.post("fetch", {"query": {"collectionName": coll}}, token)
            assert status == 200 and {d["id"]: d for d in fetched} == docs
        yield server, token, source


def test_random_queries_match_schemaless_server(seeded_schemaless: Tuple[TriplitTestServer, str, DictSource]) -> None:
    """Without a schema: no SET_ operators (has fails), no relations; values compare as stored."""
    server, token, source = seeded_schemaless
    gen = QueryGen(SEED + 7, generate_data(SEED), schemaless=True)
    outcomes: Dict[str, int] = {"ok": 0, "both-error": 0}
    for _ in range(COUNT // 2):
        q = gen.query()
        status, body = server.post("fetch", {"query": q}, token)
        try:
            mine: Any = evaluate(q, source, variables=_session_vars(token))
        except InvalidQueryError as e:
            mine = e
        detail = f"seed={SEED} query={json.dumps(q)}"
        if status != 200:
            assert isinstance(mine, InvalidQueryError), f"server rejected ({status} {body}), local answered; {detail}"
            outcomes["both-error"] += 1
            continue
        assert not isinstance(mine, Exception), f"local raised {mine!r}, server answered {body!r}; {detail}"
        assert mine == body, f"mismatch; {detail}\n server: {json.dumps(body)[:2000]}\n local:  {json.dumps(mine)[:2000]}"
        outcomes["ok"] += 1
    print(f"schemaless seed={SEED} outcomes={outcomes}")
    assert outcomes["ok"] >= 150, outcomes
