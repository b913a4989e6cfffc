"""Binding global variables into a query (query/_globals.py): where, exists, include and order
subqueries; names without a value, and the bare ``$global``, stay as they are."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Optional

import pytest

from triplit_sync.query import evaluate
from triplit_sync.query._globals import bind_global_variables, normalize_global_variables


def test_filters_anywhere_in_the_query_are_bound_and_the_rest_is_shared() -> None:
    variables = normalize_global_variables({"team": "blue", "ids": {"b", "a"}, "user": {"name": "al"}})
    untouched = ["text", "=", "x"]
    query = {
        "collectionName": "todos",
        "where": [
            ["team", "=", "$global.team"],
            {"mod": "or", "filters": [["id", "in", "$global.ids"], untouched]},
            {"exists": {"collectionName": "users", "where": [["name", "=", "$global.user.name"]]}},
            ["owner", "=", "$session.sub"],
            ["x", "=", "$global.missing"],
            ["y", "=", "$global"],
        ],
        "include": {
            "author": {"subquery": {"collectionName": "users", "where": [["team", "=", "$global.team"]]},
                       "cardinality": "one"},
            "plain": None,
        },
        "order": [["author.name", "ASC", {"subquery": {"collectionName": "users",
                                                        "where": [["team", "=", "$global.team"]]},
                                          "cardinality": "one"}]],
    }
    bound = bind_global_variables(query, variables)
    assert bound["where"][0] == ["team", "=", "blue"]
    assert bound["where"][1]["filters"][0] == ["id", "in", ["a", "b"]]
    assert bound["where"][1]["filters"][1] is untouched
    assert bound["where"][2]["exists"]["where"] == [["name", "=", "al"]]
    assert bound["where"][3:] == [["owner", "=", "$session.sub"], ["x", "=", "$global.missing"], ["y", "=", "$global"]]
    assert bound["include"]["author"]["subquery"]["where"] == [["team", "=", "blue"]]
    assert bound["order"][0][2]["subquery"]["where"] == [["team", "=", "blue"]]
    # The caller's query is not changed.
    assert query["where"][0] == ["team", "=", "$global.team"]
    plain = {"collectionName": "todos", "where": [["a", "=", 1]]}
    assert bind_global_variables(plain, variables)["where"] is plain["where"]


class _Source:
    def __init__(self, docs: Dict[str, Dict[str, Any]]) -> None:
        self.docs = docs

    def scan(self, collection: str) -> Any:
        return list(self.docs.values()) if collection == "todos" else []

    def get(self, collection: str, entity_id: str) -> Optional[Dict[str, Any]]:
        return self.docs.get(entity_id) if collection == "todos" else None


def test_bound_queries_evaluate_like_the_variables() -> None:
    docs = _Source({"1": {"id": "1", "team": "blue"}, "2": {"id": "2", "team": "red"}})
    query = {"collectionName": "todos", "where": [["team", "=", "$global.team"]]}
    variables = normalize_global_variables({"team": "red"})
    by_value = evaluate(bind_global_variables(query, variables), docs)
    by_scope = evaluate(query, docs, variables={"$global": variables})
    assert [d["id"] for d in by_value] == [d["id"] for d in by_scope] == ["2"]


def test_normalize_copies_converts_and_names_bad_values() -> None:
    source = {"tags": ["a"], "when": dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc), "s": {2, 1}}
    normal = normalize_global_variables(source)
    source["tags"].append("b")
    assert normal == {"tags": ["a"], "when": "2026-01-02T00:00:00.000Z", "s": [1, 2]}
    assert normalize_global_variables(None) == {}
    with pytest.raises(TypeError, match="'obj'"):
        normalize_global_variables({"obj": object()})
    with pytest.raises(TypeError, match="name"):
        normalize_global_variables({"a.b": 1})
    with pytest.raises(TypeError, match="dict"):
        normalize_global_variables([("a", 1)])
