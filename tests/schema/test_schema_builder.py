"""The schema builder and the schema JSON: same JSON as the JS builder, exact round-trip, lookups, hash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.support.schema_samples import (
    FIXTURES,
    JS_BUILT,
    JS_BUILT_HASH_FROM_NODE,
    SAMPLE_HASH_FROM_NODE,
    SAMPLE_SCHEMA,
    load_json,
    rich_schema,
)
from triplit_sync.errors import SchemaValidationError
from triplit_sync.schema import (
    DEFAULT_ROLES,
    Collection,
    DateType,
    JsonType,
    NumberType,
    RecordType,
    Relation,
    S,
    Schema,
    SetType,
    StringType,
)

# ------------------------------------------------------------------ the JSON the builder makes


def test_python_builder_matches_js_builder_byte_for_byte() -> None:
    built = rich_schema().to_json()
    expected = load_json(JS_BUILT)
    assert built == expected
    # Same key order too: dumping both gives the same text.
    assert json.dumps(built, indent=2) == json.dumps(expected, indent=2)


@pytest.mark.parametrize(
    "made, expected",
    [
        (S.Id(),
         {"type": "string", "config": {"nullable": False, "default": {"func": "nanoid", "args": None}}}),
        (S.Id(format="uuidv7"),
         {"type": "string", "config": {"nullable": False, "default": {"func": "uuidv7", "args": None}}}),
        (S.String(), {"type": "string", "config": {}}),
        (S.String(enum=("x", "y"), nullable=True, default="x"),
         {"type": "string", "config": {"enum": ["x", "y"], "nullable": True, "default": "x"}}),
        (S.Number(default=0), {"type": "number", "config": {"default": 0}}),
        (S.Boolean(default=False), {"type": "boolean", "config": {"default": False}}),
        (S.Date(default=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
         {"type": "date", "config": {"default": "2024-01-02T03:04:05.000Z"}}),
        (S.Json(default={"a": [1]}), {"type": "json", "config": {"default": {"a": [1]}}}),
        (S.Set(S.Number(), default={3, 1}),
         {"type": "set", "items": {"type": "number", "config": {}}, "config": {"default": [1, 3]}}),
        (S.Optional(S.String(nullable=True)),
         {"type": "string", "config": {"nullable": True, "optional": True}}),
        (S.Optional(S.Record({"a": S.String()})),
         {"type": "record", "config": {"optional": True},
          "properties": {"a": {"type": "string", "config": {}}}}),
        (S.Default.Id.nanoid(8), {"func": "nanoid", "args": [8]}),
        (S.Default.now(), {"func": "now", "args": None}),
        (S.Default.Set.empty(), {"func": "Set.empty", "args": None}),
    ],
)
def test_each_builder_function_gives_the_js_json(made: object, expected: object) -> None:
    got = made.to_json() if hasattr(made, "to_json") else made  # type: ignore[union-attr]
    assert json.dumps(got) == json.dumps(expected)


def test_optional_copies_and_does_not_touch_the_original() -> None:
    base = S.String()
    opt = S.Optional(base)
    assert opt.optional and not base.optional
    assert base.to_json() == {"type": "string", "config": {}}


def test_collection_object_and_plain_dict_give_the_same_json() -> None:
    attrs = {"id": S.Id(), "name": S.String()}
    a = Schema({"users": Collection(attrs, permissions={"user": {"read": {"filter": [True]}}})})
    b = Schema({"users": {"schema": S.Schema(attrs), "permissions": {"user": {"read": {"filter": [True]}}}}})
    assert a.to_json() == b.to_json()
    assert a == b
    assert "roles" not in a.to_json()


def test_relation_helpers() -> None:
    rel = S.RelationMany("users", {"where": [["a", "=", "$id"]]}, limit=2)
    assert rel.to_json() == {"query": {"collectionName": "users", "where": [["a", "=", "$id"]], "limit": 2},
                             "cardinality": "many"}
    assert S.RelationOne("users").to_json() == {"query": {"collectionName": "users"}, "cardinality": "one"}
    assert S.RelationById("users", "$owner").collection_name == "users"
    with pytest.raises(SchemaValidationError, match="has a query on 'other'"):
        S.RelationMany("users", {"collectionName": "other"})


# ------------------------------------------------------------------ round-trip


def test_sample_schema_round_trips_exactly() -> None:
    text = SAMPLE_SCHEMA.read_text()
    original = json.loads(text)
    schema = Schema.from_json(original)
    assert schema.to_json() == original
    assert json.dumps(schema.to_json(), indent=2) == json.dumps(original, indent=2)
    # The fixture is json.dumps(indent=2) plus a newline, so the bytes match too.
    assert json.dumps(schema.to_json(), indent=2) + "\n" == text


def test_from_file_and_to_file_round_trip(tmp_path: Path) -> None:
    schema = Schema.from_file(SAMPLE_SCHEMA)
    out = tmp_path / "schema.json"
    schema.to_file(out)
    assert out.read_text() == SAMPLE_SCHEMA.read_text()
    assert Schema.from_file(out) == schema


def test_from_json_accepts_the_schema_route_answer_and_copies_its_input() -> None:
    data = load_json(SAMPLE_SCHEMA)
    schema = Schema.from_json({"type": "schema", "schema": data})
    assert schema.to_json() == data
    data["collections"]["todos"]["schema"]["properties"]["text"]["config"]["nullable"] = True
    assert schema.to_json()["collections"]["todos"]["schema"]["properties"]["text"]["config"] == {}
    mutated = schema.to_json()
    mutated["roles"].clear()
    assert schema.roles  # to_json hands out a copy


def test_from_file_with_bad_json_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SchemaValidationError, match="bad.json"):
        Schema.from_file(bad)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s["collections"]["todos"]["schema"]["properties"].pop("id"), "primary key 'id'"),
        (lambda s: s["collections"]["todos"]["schema"]["properties"]["text"].update(type="str"),
         r"collections\.todos\.schema\.text: unknown type 'str'"),
        (lambda s: s["collections"]["todos"]["schema"]["properties"].update(bad={"type": "set", "items": {
            "type": "record", "properties": {}}}), "set items must be"),
        (lambda s: s["collections"]["todos"]["schema"]["properties"]["text"]["config"].update(enum="abc"),
         "enum must be a list of strings"),
        (lambda s: s["collections"]["todos"]["schema"]["properties"]["text"]["config"].update(
            default={"func": "Set.empty", "args": None}), "'Set.empty' does not fit a string"),
        (lambda s: s["collections"]["todos"]["schema"]["properties"]["text"]["config"].update(
            default={"func": "random", "args": None}), "unknown default function 'random'"),
        (lambda s: s["collections"]["todos"]["schema"]["properties"]["completed"]["config"].update(
            default="no"),
         r"Invalid default for 'completed' in collection 'todos'.*'no'"),
        (lambda s: s["collections"].update({"_hidden": s["collections"]["todos"]}),
         "bad collection name '_hidden'"),
        (lambda s: s["collections"]["todos"]["schema"]["properties"].update({"a-b": {"type": "string"}}),
         "property name 'a-b'"),
        (lambda s: s["collections"]["todos"].update(relationships={"x": {"query": {"collectionName": "nope"},
                                                                         "cardinality": "one"}}),
         "unknown collection 'nope'"),
        (lambda s: s["collections"]["todos"].update(relationships={
            "text": {"query": {"collectionName": "todos"}, "cardinality": "one"}}),
         "cannot share its name"),
        (lambda s: s["collections"]["todos"].update(relationships={"x": {"query": {"collectionName": "todos"},
                                                                         "cardinality": "some"}}),
         "cardinality must be 'one' or 'many'"),
        (lambda s: s["roles"].update(user={"sub": "$userId"}), r"roles\.user: a role needs a 'match' object"),
        (lambda s: s["collections"]["todos"]["permissions"]["user"].update(read=[True]),
         r"permissions\.user\.read: expected \{'filter'"),
    ],
)
def test_bad_schema_json_is_rejected_with_its_location(mutate: object, message: str) -> None:
    data = load_json(SAMPLE_SCHEMA)
    mutate(data)  # type: ignore[operator]
    with pytest.raises(SchemaValidationError, match=message):
        Schema.from_json(data)


def test_builder_mistakes_raise_at_the_call() -> None:
    with pytest.raises(SchemaValidationError, match="S.Set items"):
        S.Set(S.Json())
    with pytest.raises(SchemaValidationError, match="S.Id format"):
        S.Id(format="ulid")
    with pytest.raises(SchemaValidationError, match="enum must be a list"):
        S.String(enum="abc")
    with pytest.raises(SchemaValidationError, match=r"Invalid default for 'n' in collection 'c'.*'x' \(str"):
        Schema({"c": {"schema": S.Schema({"id": S.Id(), "n": S.Number(default="x")})}})
    with pytest.raises(SchemaValidationError, match="collections must be a dict"):
        Schema([])  # type: ignore[arg-type]
    with pytest.raises(SchemaValidationError, match="'collections' object"):
        Schema.from_json({"todos": {}})


# ------------------------------------------------------------------ lookups


def test_lookups() -> None:
    schema = rich_schema()
    assert schema.collection_names == ["todos", "users"]
    assert schema.has_collection("users") and not schema.has_collection("nope")
    assert isinstance(schema.attribute_type("todos", "text"), StringType)
    assert schema.attribute_type("todos", "text").enum == ["a", "b"]  # type: ignore[union-attr]
    meta_b = schema.attribute_type("todos", "meta.b")
    assert isinstance(meta_b, NumberType) and meta_b.optional
    assert isinstance(schema.attribute_type("todos", ["meta", "a"]), StringType)
    assert isinstance(schema.attribute_type("todos", "meta"), RecordType)
    tags = schema.attribute_type("todos", "tags")
    assert isinstance(tags, SetType) and isinstance(tags.items, StringType)
    assert isinstance(schema.attribute_type("todos", "d"), DateType)
    assert isinstance(schema.attribute_type("todos", "j.deep.er"), JsonType)
    assert isinstance(schema.attribute_type("todos", "owner.x"), NumberType)  # through a relation
    for missing in ("nope", "meta.nope", "text.more", "owner", ""):
        assert schema.attribute_type("todos", missing) is None, missing
    assert schema.attribute_type("nope", "id") is None

    owner = schema.relation("todos", "owner")
    assert isinstance(owner, Relation)
    assert owner.cardinality == "one" and owner.collection_name == "users"
    assert owner.query == {"collectionName": "users", "where": [["id", "=", "$owner_id"]]}
    assert schema.relation("todos", "many").cardinality == "many"  # type: ignore[union-attr]
    assert schema.relation("todos", "text") is None
    assert set(schema.relationships("todos")) == {"owner", "many", "one"}
    assert schema.relationships("users") == {}
    with pytest.raises(SchemaValidationError,
                       match="Unknown collection 'nope'; the schema has: todos, users"):
        schema.relation("nope", "x")


def test_roles_and_permissions() -> None:
    sample = Schema.from_file(SAMPLE_SCHEMA)
    assert sample.roles == load_json(SAMPLE_SCHEMA)["roles"]
    assert sample.effective_roles == sample.roles
    assert sample.permissions("todos")["user"]["insert"] == {"filter": [["owner", "=", "$role.userId"]]}
    rich = rich_schema()
    assert rich.roles is None
    assert rich.effective_roles == DEFAULT_ROLES
    assert rich.permissions("todos") is None


# ------------------------------------------------------------------ hash


def test_hash_equals_the_servers_hash_object() -> None:
    assert Schema.from_file(SAMPLE_SCHEMA).hash() == SAMPLE_HASH_FROM_NODE
    assert rich_schema().hash() == JS_BUILT_HASH_FROM_NODE


def test_hash_is_stable_and_changes_with_the_schema() -> None:
    data = load_json(SAMPLE_SCHEMA)
    # Key order does not matter to hashObject (keys are sorted).
    reordered = {"roles": data["roles"], "collections": dict(reversed(list(data["collections"].items())))}
    assert Schema.from_json(reordered).hash() == SAMPLE_HASH_FROM_NODE
    # Roles are not part of it; collections are.
    data["roles"]["other"] = {"match": {"x": "y"}}
    assert Schema.from_json(data).hash() == SAMPLE_HASH_FROM_NODE
    props = data["collections"]["todos"]["schema"]["properties"]
    props["extra"] = {"type": "string", "config": {"optional": True}}
    assert Schema.from_json(data).hash() != SAMPLE_HASH_FROM_NODE


def _node_modules() -> Path:
    from triplit_sync.testing import TestServerError, ensure_server_installed

    try:
        folder = ensure_server_installed()
    except TestServerError as e:  # pragma: no cover - depends on the machine
        pytest.skip(f"no Node install of the Triplit packages: {e}")
    if shutil.which("node") is None:  # pragma: no cover
        pytest.skip("node is not installed")
    return folder / "node_modules"


def _run_node(script: str, *args: str) -> str:
    node_modules = _node_modules()
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(node_modules, os.path.join(tmp, "node_modules"))
        shutil.copy(FIXTURES / script, tmp)
        proc = subprocess.run(["node", script, *args], cwd=tmp, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.server
def test_hash_and_builder_fixtures_match_the_installed_js_packages(tmp_path: Path) -> None:
    # The constants and the JSON fixture above came from Node; check them against the real packages.
    ours = tmp_path / "ours.json"
    rich_schema().to_file(ours)
    hashes = _run_node("schema_js_hash.mjs", str(SAMPLE_SCHEMA), str(ours)).split()
    assert [int(h) for h in hashes] == [SAMPLE_HASH_FROM_NODE, rich_schema().hash()]
    assert json.loads(_run_node("schema_js_builder.mjs")) == rich_schema().to_json()


def test_a_schemaless_server_answer_is_named_as_such() -> None:
    with pytest.raises(SchemaValidationError, match="The server has no schema"):
        Schema.from_json({"type": "schemaless"})


def test_collection_accepts_json_types_as_well_as_builder_types() -> None:
    coll = Collection({"id": {"type": "string", "config": {}}, "n": S.Number()})
    assert isinstance(coll.schema.properties["id"], StringType)
    assert coll.to_json()["schema"]["properties"]["n"] == {"type": "number", "config": {}}


def test_docstring_examples_run() -> None:
    import doctest

    import triplit_sync.schema._ids
    import triplit_sync.schema._builder
    import triplit_sync.schema._types
    import triplit_sync.schema._values
    import triplit_sync.schema.model
    import triplit_sync._util.jsnumber

    for module in (triplit_sync.schema.model, triplit_sync._util.jsnumber, triplit_sync.schema._types, triplit_sync.schema._builder,
                   triplit_sync.schema._values, triplit_sync.schema._ids):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0 or module in (triplit_sync.schema._builder, triplit_sync.schema._values)
