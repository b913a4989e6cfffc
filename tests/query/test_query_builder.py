"""The fluent Query builder: JSON it produces, immutability, validation at the call."""

from __future__ import annotations

import datetime as dt

import pytest

from triplit_sync.errors import InvalidQueryError
from triplit_sync.query import Query, and_, exists, or_, validate

from ..support.query_gen import SCHEMA


def test_fluent_calls_build_collection_query_json() -> None:
    q = (
        Query("todos")
        .where("completed", "=", False)
        .where(["text", "like", "%7%"], ("owner", "in", {"b", "a"}))
        .order("created_at", "DESC")
        .order([["id", "ASC"]])
        .limit(20)
        .after(["2024-01-01T00:00:00.000Z", "x"], inclusive=True)
        .select(["id", "text"])
        .include("owner")
        .vars({"o": "bob"})
    )
    assert q.to_json() == {
        "collectionName": "todos",
        "where": [["completed", "=", False], ["text", "like", "%7%"], ["owner", "in", ["a", "b"]]],
        "order": [["created_at", "DESC"], ["id", "ASC"]],
        "limit": 20,
        "after": [["2024-01-01T00:00:00.000Z", "x"], True],
        "select": ["id", "text"],
        "include": {"owner": None},
        "vars": {"o": "bob"},
    }


def test_only_set_keys_and_immutability() -> None:
    base = Query("todos")
    narrowed = base.where("done", "=", True)
    assert base.to_json() == {"collectionName": "todos"}
    assert narrowed.to_json() == {"collectionName": "todos", "where": [["done", "=", True]]}
    out = narrowed.to_json()
    out["where"].append(["x", "=", 1])
    assert narrowed.to_json()["where"] == [["done", "=", True]]
    assert narrowed == Query("todos").where("done", "=", True)
    assert hash(narrowed) == hash(Query("todos").where("done", "=", True))


def test_python_values_become_json() -> None:
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
    q = Query("t").where("at", ">", when).where("d", "<", dt.date(2024, 1, 2)).where("n", "nin", (3, 1))
    assert q.to_json()["where"] == [
        ["at", ">", "2024-05-01T12:30:00.000Z"],
        ["d", "<", "2024-01-02T00:00:00.000Z"],
        ["n", "nin", [3, 1]],
    ]
    assert Query("t").order("at").after(when).to_json()["after"] == [["2024-05-01T12:30:00.000Z"], False]


def test_groups_and_exists_helpers() -> None:
    q = Query("todos").where(
        or_(["a", "=", 1], and_(["b", "=", 2], ["c", "!=", 3])),
        exists("comments", where=[["likes", ">", 3]]),
        exists(Query("notes").where("todo_id", "=", "$1.id")),
        True,
    )
    assert q.to_json()["where"] == [
        {"mod": "or", "filters": [["a", "=", 1], {"mod": "and", "filters": [["b", "=", 2], ["c", "!=", 3]]}]},
        {"exists": {"_extends": "comments", "where": [["likes", ">", 3]]}},
        {"exists": {"collectionName": "notes", "where": [["todo_id", "=", "$1.id"]]}},
        True,
    ]
    assert or_([["a", "=", 1], ["b", "=", 2]]) == or_(["a", "=", 1], ["b", "=", 2])


def test_include_forms() -> None:
    sub = Query("notes").where("todo_id", "=", "$1.id")
    q = (
        Query("todos")
        .include("owner")
        .include("mine", "owner")
        .include("recent", {"_extends": "posts", "limit": 3})
        .include("notes", sub)
        .include("first_note", sub.limit(1), cardinality="one")
        .include("raw", {"subquery": {"collectionName": "x"}, "cardinality": "one"})
    )
    assert q.to_json()["include"] == {
        "owner": None,
        "mine": {"_extends": "owner"},
        "recent": {"_extends": "posts", "limit": 3},
        "notes": {"subquery": sub.to_json(), "cardinality": "many"},
        "first_note": {"subquery": {**sub.to_json(), "limit": 1}, "cardinality": "one"},
        "raw": {"subquery": {"collectionName": "x"}, "cardinality": "one"},
    }


def test_after_from_a_document_uses_the_order_keys() -> None:
    q = Query("t").order("score", "DESC").order("id").after({"id": "b", "score": 3, "x": 1})
    assert q.to_json()["after"] == [[3, "b"], False]


def test_from_json_round_trip() -> None:
    data = {
        "collectionName": "users",
        "where": [["name", "=", "ann"], {"mod": "or", "filters": [["age", ">", 3], ["age", "isDefined", False]]}],
        "order": [["name", "ASC"]],
        "limit": 2,
        "include": {"posts": None},
        "traceId": "ignored",
    }
    q = Query.from_json(data, schema=SCHEMA)
    expected = {k: v for k, v in data.items() if k != "traceId"}
    assert q.to_json() == expected
    assert Query.from_json(q.to_json()).to_json() == expected


@pytest.mark.parametrize(
    "build, needle",
    [
        (lambda: Query("nope", schema=SCHEMA), "'nope'"),
        (lambda: Query("users", schema=SCHEMA).where("nope", "=", 1), "'nope'"),
        (lambda: Query("users", schema=SCHEMA).where("address.nope", "=", 1), "'address.nope'"),
        (lambda: Query("users", schema=SCHEMA).where("score", "like", "%"), "'like'"),
        (lambda: Query("users", schema=SCHEMA).where("active", "in", [True]), "'in'"),
        (lambda: Query("users", schema=SCHEMA).where("days", "in", ["x"]), "'in'"),
        (lambda: Query("users", schema=SCHEMA).where("address", "=", {}), "'='"),
        (lambda: Query("users", schema=SCHEMA).where("posts.nope", "=", 1), "'nope'"),
        (lambda: Query("users", schema=SCHEMA).order("tags"), "'tags'"),
        (lambda: Query("users", schema=SCHEMA).order("posts.title"), "'posts.title'"),
        (lambda: Query("users", schema=SCHEMA).select(["nope"]), "'nope'"),
        (lambda: Query("users", schema=SCHEMA).include("nope"), "'nope'"),
        (lambda: Query("users", schema=SCHEMA).include("name"), "'name'"),
        (lambda: Query("users", schema=SCHEMA).where(exists("name")), "'name'"),
        (lambda: Query("users").where("a", "~=", 1), "'~='"),
        (lambda: Query("users").where("a", "SET_has", 1), "'SET_has'"),
        (lambda: Query("users").where(or_(["a", "contains", 1])), "'contains'"),
        (lambda: Query("users").where(exists(Query("x").where("a", "bad", 1))), "'bad'"),
        (lambda: Query("users").where("a", "like", 3), "3"),
        (lambda: Query("users").order("a", "UP"), "'UP'"),
        (lambda: Query("users").limit(-1), "-1"),
        (lambda: Query("users").include("a", {"subquery": {"collectionName": "x"}}, cardinality="some"), "'some'"),
        (lambda: Query("users").order("a").after([1, 2]), "[1, 2]"),
        (lambda: Query(""), "''"),
    ],
)
def test_bad_queries_raise_at_the_call_naming_the_value(build, needle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidQueryError) as info:
        build()
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_relation_paths_and_record_paths_are_valid_with_a_schema() -> None:
    q = (
        Query("users", schema=SCHEMA)
        .where("address.city", "=", "Oslo")
        .where("posts.info.views", ">", 3)
        .where("tags", "has", "a")
        .where("tags", "like", "a%")
        .where("meta.deep.path", "=", 1)
        .where(exists("posts", where=[["score", ">", 1]]))
        .order("address.city")
        .select(["id", "address.city"])
        .include("top", {"_extends": "posts", "where": [["score", ">", 1]], "limit": 1})
    )
    validate(q, SCHEMA)
    validate(q.to_json(), SCHEMA)
    with pytest.raises(InvalidQueryError):
        validate({"collectionName": "users", "where": [["tags", "like", 1, 2]]})
