"""Schemas and encoded values against a real Triplit server."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List

import pytest
import websocket

from tests.support.schema_samples import SAMPLE_SCHEMA, load_json, rich_schema
from triplit_sync.schema import DEFAULT_ROLES, S, Schema
from triplit_sync.testing import TriplitTestServer

UTC = timezone.utc


@pytest.fixture(scope="module")
def rich_server() -> Iterator[TriplitTestServer]:
    with TriplitTestServer(schema=rich_schema()) as server:
        yield server


def server_schema(server: TriplitTestServer) -> Dict[str, Any]:
    status, body = server.post("schema", {})
    assert status == 200 and body["type"] == "schema", body
    return body  # type: ignore[no-any-return]


def apply(server: TriplitTestServer, collection: str, sets: Dict[str, Dict[str, Any]]) -> Any:
    """Write through /apply-changes: the same path as synced CHANGES, so no server-side defaults."""
    changes = {
        "json": {collection: {"sets": [[i, doc] for i, doc in sets.items()], "deletes": []}},
        "meta": {"values": {f"{collection}.sets": ["map"], f"{collection}.deletes": ["set"]}},
    }
    return server.post("apply-changes", {"changes": changes})


def fetch(server: TriplitTestServer, collection: str) -> List[Dict[str, Any]]:
    status, body = server.post("fetch", {"query": {"collectionName": collection}})
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def test_a_server_started_with_a_python_built_schema_returns_it(rich_server: TriplitTestServer) -> None:
    rich = rich_schema()
    body = server_schema(rich_server)
    # The schema declares no roles, so the server adds its defaults; everything else is ours.
    assert body["schema"] == {**rich.to_json(), "roles": DEFAULT_ROLES}
    loaded = Schema.from_json(body)
    assert loaded.hash() == rich.hash()
    assert loaded.roles == DEFAULT_ROLES


def test_sample_schema_from_the_server_round_trips(triplit_server: TriplitTestServer) -> None:
    body = server_schema(triplit_server)
    assert body["schema"] == load_json(SAMPLE_SCHEMA)
    assert Schema.from_json(body).to_json() == load_json(SAMPLE_SCHEMA)


def test_encoded_inserts_are_accepted_and_read_back(rich_server: TriplitTestServer) -> None:
    rich_server.reset()
    rich = rich_schema()
    values = {"id": "full", "text": "b", "n": 2.5, "b": True,
              "d": datetime(2024, 5, 6, 7, 8, 9, 10000, tzinfo=UTC),
              "d2": datetime(2020, 1, 1), "tags": {"x", "y"}, "nums": {1, 2.5}, "meta": {"a": "m", "b": 4},
              "j": {"k": [1, {"z": None}]}, "optrec": {"x": 1}, "recn": {"x": 2}, "owner_id": "u1",
              "dates": {datetime(2021, 1, 1, tzinfo=UTC)}, "flags": {True, False}}
    full = rich.encode_entity("todos", values)
    minimal = rich.encode_entity("todos", {"id": "min", "meta": {"a": "x"}, "j": 0, "owner_id": "u2"})
    status, body = apply(rich_server, "todos", {"full": full, "min": minimal})
    assert status == 200, body

    by_id = {e["id"]: e for e in fetch(rich_server, "todos")}
    got = by_id["full"]
    assert got["d"] == "2024-05-06T07:08:09.010Z" and got["d2"] == "2020-01-01T00:00:00.000Z"
    assert sorted(got["tags"]) == ["x", "y"] and sorted(got["nums"]) == [1, 2.5]
    assert sorted(got["flags"]) == [False, True] and got["dates"] == ["2021-01-01T00:00:00.000Z"]
    assert got["meta"] == {"a": "m", "b": 4} and got["j"] == {"k": [1, {"z": None}]}
    # Decoding the server's answer gives back the Python values we started from.
    decoded = rich.decode_entity("todos", got)
    assert {k: decoded[k] for k in values} == {**values, "d2": datetime(2020, 1, 1, tzinfo=UTC)}

    # The defaults we filled in are what the server stored (it fills none for synced writes).
    got = by_id["min"]
    assert got["text"] == "a" and got["n"] == 3 and got["b"] is False and got["tags"] == []
    assert got["d"] == minimal["d"] and got["u"] == minimal["u"] and len(got["nn"]) == 10


def test_the_server_rejects_a_synced_insert_without_the_defaults(rich_server: TriplitTestServer) -> None:
    # Why encode_entity fills defaults: the same entity, raw, is refused (PROTOCOL.md §3.3).
    raw = {"id": "raw", "meta": {"a": "x"}, "j": 1, "owner_id": "u"}
    status, body = apply(rich_server, "todos", {"raw": raw})
    assert status == 400 and body["name"] == "DBSerializationError", body
    status, body = apply(rich_server, "todos", {"raw": rich_schema().encode_entity("todos", raw)})
    assert status == 200, body


def test_patches_replace_sets_and_remove_optional_attributes(rich_server: TriplitTestServer) -> None:
    rich_server.reset()
    rich = rich_schema()
    doc = rich.encode_entity("todos", {"id": "t", "meta": {"a": "x", "b": 1}, "j": 1, "owner_id": "u",
                                       "tags": {"a", "b"}, "d2": datetime(2024, 1, 1)})
    assert apply(rich_server, "todos", {"t": doc})[0] == 200

    patch = rich.encode_entity("todos", {"tags": {"b", "c"}, "d2": None, "meta": {"b": 2}}, partial=True,
                               current=doc)
    assert apply(rich_server, "todos", {"t": patch})[0] == 200
    got = fetch(rich_server, "todos")[0]
    assert sorted(got["tags"]) == ["b", "c"]
    assert got.get("d2") is None
    assert got["meta"] == {"a": "x", "b": 2}  # records merge

    # Without the current document a set in a patch can only add.
    patch = rich.encode_entity("todos", {"tags": {"z"}}, partial=True)
    assert apply(rich_server, "todos", {"t": patch})[0] == 200
    assert sorted(fetch(rich_server, "todos")[0]["tags"]) == ["b", "c", "z"]


@pytest.mark.server
def test_schema_hash_is_the_one_the_server_accepts_in_the_handshake() -> None:
    # The server puts hashObject(collections) of a compatible schema override on its list; a
    # socket opened with that number as ?schema= gets READY at once, any other gets SCHEMA_REQUEST.
    sample = load_json(SAMPLE_SCHEMA)
    changed = copy.deepcopy(sample)
    changed["collections"]["todos"]["schema"]["properties"]["note"] = S.Optional(S.String()).to_json()
    with TriplitTestServer(schema=sample) as server:
        status, body = server.post("override-schema", {"schema": changed})
        assert status == 200 and body["successful"], body

        def first_frame(schema_hash: int) -> str:
            url = f"ws://127.0.0.1:{server.port}/?schema={schema_hash}&token={server.service_token()}"
            ws = websocket.create_connection(url, timeout=10)
            try:
                return str(json.loads(ws.recv())["type"])
            finally:
                ws.close()

        assert first_frame(Schema.from_json(changed).hash()) == "READY"
        assert first_frame(Schema.from_json(sample).hash()) == "SCHEMA_REQUEST"
