"""HttpClient with a schema: Python values in and out, defaults, includes decoded per collection.

Runs its own server: the suite's sample schema has no set attributes and no relations.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Dict, Iterator

import pytest

from triplit_sync.errors import SchemaValidationError
from triplit_sync.http import HttpClient
from triplit_sync.query import Query
from triplit_sync.schema import S, Schema
from triplit_sync.testing import TriplitTestServer

UTC = timezone.utc

SCHEMA = Schema(
    collections={
        "things": {
            "schema": S.Schema({
                "id": S.Id(),
                "name": S.String(),
                "tags": S.Set(S.String(), default=S.Default.Set.empty()),
                "scores": S.Set(S.Number(), default=S.Default.Set.empty()),
                "created": S.Date(default=S.Default.now()),
                "due": S.Optional(S.Date()),
                "meta": S.Record({"color": S.Optional(S.String())}),
                "owner_id": S.Optional(S.String()),
            }),
            "relationships": {"owner": S.RelationById("people", "$owner_id")},
        },
        "people": {
            "schema": S.Schema({"id": S.Id(), "name": S.String(), "born": S.Optional(S.Date())}),
            "relationships": {"things": S.RelationMany("things", where=[["owner_id", "=", "$1.id"]])},
        },
    }
)


@pytest.fixture(scope="module")
def server() -> Iterator[TriplitTestServer]:
    with TriplitTestServer(schema=SCHEMA.to_json()) as srv:
        yield srv


@pytest.fixture
def http(server: TriplitTestServer) -> Iterator[HttpClient]:
    with HttpClient(server.url, server.service_token(), schema=SCHEMA) as client:
        client.clear_server()
        yield client


def thing(i: int, **extra: object) -> Dict[str, object]:
    return {"id": f"x{i}", "name": f"thing {i}", "meta": {}, **extra}


def test_insert_fills_defaults_and_returns_python_values(http: HttpClient) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    due = datetime(2030, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    stored = http.insert("things", {"name": "a", "tags": {"red", "blue"}, "scores": {1, 2.5}, "due": due,
                                    "meta": {"color": "green"}})
    assert stored["tags"] == {"red", "blue"}
    assert stored["scores"] == {1, 2.5}
    assert stored["due"] == due
    assert isinstance(stored["created"], datetime) and stored["created"] >= before
    assert stored["meta"] == {"color": "green"}
    again = http.fetch_by_id("things", stored["id"])
    assert again == stored


def test_fetch_decodes_sets_and_dates(http: HttpClient) -> None:
    http.insert("things", thing(1, tags={"a"}, due=datetime(2024, 1, 1, tzinfo=UTC)))
    http.insert("things", thing(2))
    rows = http.fetch(Query("things").order("id", "ASC"))
    assert rows[0]["tags"] == {"a"} and rows[0]["due"] == datetime(2024, 1, 1, tzinfo=UTC)
    assert rows[1]["tags"] == set() and rows[1]["scores"] == set() and "due" not in rows[1]
    # datetimes in filters are sent as ISO strings
    hits = http.fetch({"collectionName": "things", "where": [["due", ">", datetime(2023, 1, 1)]]})
    assert [r["id"] for r in hits] == ["x1"]
    assert [r["id"] for r in http.fetch(Query("things").where("tags", "has", "a"))] == ["x1"]


def test_select_returns_partial_decoded_entities(http: HttpClient) -> None:
    http.insert("things", thing(1, tags={"a", "b"}))
    assert http.fetch(Query("things").select(["id", "tags"])) == [{"id": "x1", "tags": {"a", "b"}}]


def test_includes_are_decoded_with_the_related_collection(http: HttpClient) -> None:
    born = datetime(1990, 2, 3, 4, 5, 6, tzinfo=UTC)
    http.insert("people", {"id": "p1", "name": "Pat", "born": born})
    http.insert("things", thing(1, owner_id="p1", tags={"t"}))
    http.insert("things", thing(2, owner_id="p1"))
    q = (Query("things").where("id", "=", "x1")
         .include("owner")                                   # the relation itself
         .include("boss", "owner")                           # the relation under another alias
         .include("crowd", Query("people").where("born", "<", datetime(2000, 1, 1)), cardinality="many"))
    [row] = http.fetch(q)
    assert row["tags"] == {"t"}
    assert row["owner"] == {"id": "p1", "name": "Pat", "born": born}
    assert row["boss"] == row["owner"]
    assert row["crowd"] == [row["owner"]]
    [person] = http.fetch(Query("people").include("things", {"_extends": "things", "order": [["id", "ASC"]]}))
    assert person["born"] == born
    assert [t["id"] for t in person["things"]] == ["x1", "x2"]
    assert isinstance(person["things"][0]["created"], datetime)
    # one relation that matches nothing
    http.insert("things", thing(3, owner_id="nobody"))
    assert http.fetch_one(Query("things").id("x3").include("owner"))["owner"] is None  # type: ignore[index]


def test_update_encodes_a_partial_patch(http: HttpClient) -> None:
    http.insert("things", thing(1, tags={"a", "b"}, scores={1}, due=datetime(2024, 1, 1, tzinfo=UTC)))
    http.update("things", "x1", {"tags": {"c"}, "scores": {1: False, 2: True}, "meta": {"color": "red"}})
    got = http.fetch_by_id("things", "x1")
    assert got is not None
    assert got["tags"] == {"a", "b", "c"}  # a set adds its items (the server merges sets)
    assert got["scores"] == {2}
    assert got["meta"] == {"color": "red"}
    http.update("things", "x1", {"tags": {"a": False}, "due": None})
    got = http.fetch_by_id("things", "x1")
    assert got is not None and got["tags"] == {"b", "c"} and got.get("due") is None
    new_due = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
    http.update("things", "x1", {"due": new_due})
    assert http.fetch_by_id("things", "x1")["due"] == new_due  # type: ignore[index]


def test_bulk_insert_encodes_and_decodes(http: HttpClient) -> None:
    result = http.bulk_insert({"things": [thing(i, tags={f"t{i}"}) for i in range(50)],
                               "people": [{"id": "p", "name": "P", "born": datetime(2000, 1, 1)}]})
    assert result is not None
    assert result["things"][7]["tags"] == {"t7"}
    assert isinstance(result["things"][7]["created"], datetime)
    assert result["people"][0]["born"] == datetime(2000, 1, 1, tzinfo=UTC)  # naive means UTC
    assert http.stats() == {"things": 50, "people": 1}


def test_apply_changes_fills_defaults_with_a_schema(http: HttpClient) -> None:
    # The server fills no defaults for changes; the schema does it before sending.
    http.apply_changes({"things": {"sets": {"x1": thing(1, tags={"q"})}, "deletes": set()}})
    got = http.fetch_by_id("things", "x1")
    assert got is not None and got["tags"] == {"q"} and got["scores"] == set()
    assert isinstance(got["created"], datetime)
    http.apply_changes({"things": {"sets": {"x1": {"tags": {"r"}}}, "deletes": set()}})
    assert http.fetch_by_id("things", "x1")["tags"] == {"q", "r"}  # type: ignore[index]


def test_bad_values_raise_before_anything_is_sent(http: HttpClient) -> None:
    with pytest.raises(SchemaValidationError, match="tags"):
        http.insert("things", thing(1, tags="not a set"))
    with pytest.raises(SchemaValidationError, match="nope"):
        http.insert("nope", {"a": 1})
    with pytest.raises(SchemaValidationError, match="name"):
        http.bulk_insert({"things": [thing(1), {"id": "x2", "meta": {}}]})  # a required attribute missing
    with pytest.raises(SchemaValidationError, match="due"):
        http.update("things", "x1", {"due": "next tuesday"})
    assert http.stats() == {"things": 0, "people": 0}


def test_without_a_schema_results_are_plain_json(server: TriplitTestServer, http: HttpClient) -> None:
    http.insert("things", thing(1, tags={"a"}, due=datetime(2024, 1, 1, tzinfo=UTC)))
    with HttpClient(server.url, server.service_token()) as plain:
        [row] = plain.fetch("things")
        assert row["tags"] == ["a"] and row["due"] == "2024-01-01T00:00:00.000Z"
        # Python values still go out in the forms the server reads (arrays for sets, ISO dates)
        plain.insert("things", {"id": "x2", "name": "n", "meta": {}, "tags": {"z"},
                                "due": datetime(2025, 1, 1, tzinfo=UTC)})
    assert http.fetch_by_id("things", "x2")["tags"] == {"z"}  # type: ignore[index]
