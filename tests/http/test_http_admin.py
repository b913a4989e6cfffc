"""Schema administration over HTTP: override_schema and clear(full=True), on a server of their own
(they replace the schema, which the suite's shared server must keep)."""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterator

import pytest

from triplit_sync.errors import ServerError
from triplit_sync.http import HttpClient
from triplit_sync.schema import S, Schema
from triplit_sync.testing import TriplitTestServer

NOTES: Dict[str, Any] = Schema({
    "notes": {"schema": S.Schema({"id": S.Id(), "body": S.String(), "pinned": S.Boolean(default=False)})},
}).to_json()


@pytest.fixture
def http() -> Iterator[HttpClient]:
    with TriplitTestServer() as server:  # schemaless
        with HttpClient(server.url, server.service_token()) as client:
            yield client


def test_override_schema_then_clear_full(http: HttpClient) -> None:
    assert http.schema() is None
    report = http.override_schema(NOTES)
    assert report["successful"] is True and report["code"] == "SUCCESS"
    schema = http.schema()
    assert schema is not None and set(schema["collections"]) == {"notes"}
    assert "roles" in schema  # the server adds its default roles
    # a Schema object works as well, and the server now fills defaults
    assert http.override_schema(Schema.from_json(schema))["successful"] is True
    assert http.insert("notes", {"body": "hi"})["pinned"] is False
    assert http.stats() == {"notes": 1}
    http.clear_server(full=True)
    assert http.schema() is None
    assert http.stats() == {}


def test_refused_schema_changes_raise(http: HttpClient) -> None:
    http.override_schema(NOTES)
    http.insert("notes", {"id": "n1", "body": "hi"})
    stricter = copy.deepcopy(NOTES)
    stricter["collections"]["notes"]["schema"]["properties"]["title"] = {"type": "string", "config": {}}
    with pytest.raises(ServerError) as info:  # a new required attribute, and a note without it
        http.override_schema(stricter)
    assert info.value.name == "EXISTING_DATA_MISMATCH"
    assert info.value.data["issues"]
    assert "existing data" in info.value.message
    http.delete("notes", "n1")
    with pytest.raises(ServerError) as info:
        http.override_schema(stricter, fail_on_backwards_incompatible_change=True)
    assert info.value.name == "SCHEMA_COMPATIBILITY_MISMATCH"
    assert http.override_schema(stricter)["successful"] is True  # allowed by default when no data breaks
    broken = {"collections": {"notes": {"schema": {"type": "string"}}}}
    with pytest.raises(ServerError) as info:
        http.override_schema(broken)
    assert info.value.name == "SCHEMA_INVALID"
    schema = http.schema()
    assert schema is not None and "title" in schema["collections"]["notes"]["schema"]["properties"]


def test_override_schema_checks_its_argument(http: HttpClient) -> None:
    with pytest.raises(TypeError):
        http.override_schema(42)
    with pytest.raises(ValueError, match="collections"):
        http.override_schema({"roles": {}})
