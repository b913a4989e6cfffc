"""Encoding and decoding entity values with a schema (and without one)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any, Dict

import pytest

from tests.support.schema_samples import SAMPLE_SCHEMA, rich_schema
from triplit_sync.schema import _codec
from triplit_sync._util.jsnumber import js_number_str
from triplit_sync.schema._ids import nanoid, uuid7
from triplit_sync.errors import SchemaValidationError
from triplit_sync.schema import PLAIN, S, Schema

UTC = timezone.utc
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NANOID_RE = re.compile(r"^[A-Za-z0-9_-]+$")
REQUIRED = {"meta": {"a": "x"}, "j": 1, "owner_id": "u1"}  # rich_schema's todos without defaults


@pytest.fixture(scope="module")
def schema() -> Schema:
    return rich_schema()


def insert(schema: Schema, **values: Any) -> Dict[str, Any]:
    return schema.encode_entity("todos", {**REQUIRED, **values})


def fails(match: str) -> Any:
    return pytest.raises(SchemaValidationError, match=match)


# ------------------------------------------------------------------ inserts and defaults


def test_insert_fills_every_kind_of_default(schema: Schema) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    doc = insert(schema)
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert len(doc["id"]) == 21 and NANOID_RE.match(doc["id"])
    assert doc["text"] == "a" and doc["n"] == 3 and doc["b"] is False and doc["tags"] == {}
    for key in ("d", "dn"):
        assert ISO_RE.match(doc[key]), doc[key]
        assert before <= datetime.fromisoformat(doc[key].replace("Z", "+00:00")) <= after
    assert uuid.UUID(doc["u"]).version == 4
    u7 = uuid.UUID(doc["u7"])
    assert u7.version == 7 and u7.variant == uuid.RFC_4122
    assert abs((u7.int >> 80) - time.time() * 1000) < 5000  # its first 48 bits are Unix milliseconds
    assert len(doc["nn"]) == 10
    # Optional or nullable attributes without a default stay absent.
    for key in ("d2", "nums", "optrec", "recn", "dates", "flags"):
        assert key not in doc
    assert doc["meta"] == {"a": "x"} and doc["j"] == 1 and doc["owner_id"] == "u1"


def test_given_values_win_over_defaults_and_ids_are_kept(schema: Schema) -> None:
    doc = insert(schema, id="t1", text="b", b=True, tags=["x"], n=None)
    assert doc["id"] == "t1" and doc["text"] == "b" and doc["b"] is True and doc["tags"] == {"x": True}
    assert doc["n"] is None  # nullable: an explicit None is kept


def test_generated_ids_are_unique_nanoids() -> None:
    ids = {nanoid() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 21 and NANOID_RE.match(i) for i in ids)
    assert len(nanoid(5)) == 5
    with pytest.raises(ValueError):
        nanoid(0)
    assert uuid7() != uuid7()


def test_id_is_generated_even_without_a_default() -> None:
    s = Schema({"c": {"schema": S.Schema({"id": S.String(), "x": S.Number()})}})
    doc = s.encode_entity("c", {"x": 1})
    assert len(doc["id"]) == 21
    with fails("'id' in collection 'c': expected a string, got 5"):
        s.encode_entity("c", {"id": 5, "x": 1})


def test_constant_defaults_are_not_shared_between_inserts() -> None:
    s = Schema({"c": {"schema": S.Schema({"id": S.Id(), "j": S.Json(default={"a": []}),
                                          "s": S.Set(S.String(), default=["x"])})}})
    one, two = s.encode_entity("c", {}), s.encode_entity("c", {})
    one["j"]["a"].append(1)
    one["s"]["y"] = True
    assert two["j"] == {"a": []} and two["s"] == {"x": True}


def test_missing_required_attributes(schema: Schema) -> None:
    with fails("Missing required attribute 'owner_id' in collection 'todos'"):
        schema.encode_entity("todos", {"meta": {"a": "x"}, "j": 1})
    with fails("Missing required attribute 'meta.a' in collection 'todos'"):
        schema.encode_entity("todos", {"j": 1, "owner_id": "u"})
    with fails("Missing required attribute 'meta.a'"):
        schema.encode_entity("todos", {"meta": {"b": 1}, "j": 1, "owner_id": "u"})


def test_none_is_only_allowed_on_optional_or_nullable_attributes(schema: Schema) -> None:
    doc = insert(schema, d2=None, optrec=None, recn=None, meta={"a": "x", "b": None})
    assert doc["d2"] is None and doc["optrec"] is None and doc["recn"] is None and doc["meta"]["b"] is None
    with fails(r"'owner_id' in collection 'todos': got None, but the attribute is required.*S\.Optional"):
        insert(schema, owner_id=None)
    with fails("'meta.a' in collection 'todos': got None"):
        insert(schema, meta={"a": None})


# ------------------------------------------------------------------ per type


@pytest.mark.parametrize(
    "value, wire",
    [
        (datetime(2024, 1, 1), "2024-01-01T00:00:00.000Z"),  # naive = UTC
        (datetime(2024, 1, 1, 12, 0, 0, 123999, tzinfo=UTC), "2024-01-01T12:00:00.123Z"),  # ms, truncated
        (datetime(2024, 1, 1, 2, 30, tzinfo=timezone(timedelta(hours=2))), "2024-01-01T00:30:00.000Z"),
        (date(2024, 2, 29), "2024-02-29T00:00:00.000Z"),
        ("2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z"),
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000Z"),
        ("2024-01-01T01:00:00.5+01:00", "2024-01-01T00:00:00.500Z"),
        ("2024-01-01 10:20", "2024-01-01T10:20:00.000Z"),
        ("2024-01-01", "2024-01-01T00:00:00.000Z"),
        (datetime(999, 1, 1), "0999-01-01T00:00:00.000Z"),
    ],
)
def test_dates_encode_like_js_to_iso_string(schema: Schema, value: Any, wire: str) -> None:
    assert insert(schema, d=value)["d"] == wire


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-01", "2024-01-01T25:00", 1704067200000, True, [2024]])
def test_bad_dates_are_rejected(schema: Schema, bad: Any) -> None:
    with fails(r"'d' in collection 'todos': expected a datetime"):
        insert(schema, d=bad)


def test_strings_enums_numbers_booleans(schema: Schema) -> None:
    with fails(r"'text' in collection 'todos': expected one of \['a', 'b'\], got 'c' \(str\)"):
        insert(schema, text="c")
    with fails(r"'owner_id' in collection 'todos': expected a string, got 7 \(int\)"):
        insert(schema, owner_id=7)
    with fails(r"'n' in collection 'todos': expected a number \(finite, not bool\), got True \(bool\)"):
        insert(schema, n=True)
    with fails(r"'n'.*got nan \(float\)"):
        insert(schema, n=float("nan"))
    with fails(r"'n'.*got inf"):
        insert(schema, n=float("inf"))
    assert insert(schema, n=Fraction(1, 4))["n"] == 0.25
    with fails(r"'b' in collection 'todos': expected a boolean, got 1 \(int\)"):
        insert(schema, b=1)


def test_sets_encode_to_true_maps(schema: Schema) -> None:
    assert insert(schema, tags={"x", "y"})["tags"] == {"x": True, "y": True}
    assert insert(schema, tags=frozenset(["x"]))["tags"] == {"x": True}
    assert insert(schema, tags=("x", "x"))["tags"] == {"x": True}
    assert insert(schema, nums=[1, 2.5, 1.0, 1e21, -0.5])["nums"] == {
        "1": True, "2.5": True, "1e+21": True, "-0.5": True}
    assert insert(schema, flags={True})["flags"] == {"true": True}
    assert insert(schema, dates={datetime(2024, 1, 1)})["dates"] == {"2024-01-01T00:00:00.000Z": True}
    # An already encoded map is accepted (and normalized), false entries included.
    assert insert(schema, tags={"x": True, "y": False})["tags"] == {"x": True, "y": False}
    assert insert(schema, nums={"1.0": True, 2: False})["nums"] == {"1": True, "2": False}


def test_bad_sets_name_the_attribute_and_the_item(schema: Schema) -> None:
    with fails(r"'tags' in collection 'todos': expected set items of type string, got 3 \(int\)"):
        insert(schema, tags={"a", 3})
    with fails(r"'tags'.*expected a set of strings \(or an \{item: bool\} map\), got 'abc' \(str\)"):
        insert(schema, tags="abc")
    with fails(r"'nums'.*expected set items of type number, got 'x'"):
        insert(schema, nums={"x": True})
    with fails(r"'tags'.*expected an \{item: bool\} map"):
        insert(schema, tags={"a": 1})
    with fails(r"'flags'.*set items of type boolean, got 'yes'"):
        insert(schema, flags={"yes": True})


def test_records_are_checked_with_dotted_paths(schema: Schema) -> None:
    with fails(r"Unknown attribute 'meta\.zz' in collection 'todos'; known attributes: a, b"):
        insert(schema, meta={"a": "x", "zz": 1})
    with fails(r"'meta\.b' in collection 'todos': expected a number"):
        insert(schema, meta={"a": "x", "b": "1"})
    with fails(r"'meta' in collection 'todos': expected a dict, got \['a'\]"):
        insert(schema, meta=["a"])
    with fails(r"'optrec\.x' in collection 'todos'"):
        insert(schema, optrec={"x": "1"})


def test_json_attributes_take_json_and_convert_dates_and_sets(schema: Schema) -> None:
    value = {"when": datetime(2024, 1, 1), "tags": {"a"}, "pair": (1, 2), "deep": [{"x": None}]}
    assert insert(schema, j=value)["j"] == {"when": "2024-01-01T00:00:00.000Z", "tags": {"a": True},
                                            "pair": [1, 2], "deep": [{"x": None}]}
    with fails(r"'j\.deep\[1\]' in collection 'todos': expected a JSON value.*object at"):
        insert(schema, j={"deep": [1, object()]})
    with fails(r"'j' in collection 'todos': expected an object with string keys, got 1 \(int\)"):
        insert(schema, j={1: "a"})
    with fails(r"'j\.x'.*finite number"):
        insert(schema, j={"x": float("nan")})


def test_unknown_attributes_collections_and_non_dicts(schema: Schema) -> None:
    with fails(r"Unknown attribute 'colour' in collection 'todos'; known attributes: id, text"):
        insert(schema, colour="red")
    with fails(r"Unknown attribute 'owner' in collection 'todos'"):  # a relation is not an attribute
        insert(schema, owner={"id": "u"})
    with fails(r"Unknown collection 'nope'; the schema has: todos, users"):
        schema.encode_entity("nope", {})
    with fails(r"An entity of collection 'todos' must be a dict, got \['x'\] \(list\)"):
        schema.encode_entity("todos", ["x"])  # type: ignore[arg-type]


def test_errors_carry_collection_and_attribute_and_truncate_long_values(schema: Schema) -> None:
    with pytest.raises(SchemaValidationError) as info:
        insert(schema, meta={"a": "x", "b": "y" * 1000})
    err = info.value
    assert err.collection == "todos" and err.attribute == "meta.b"  # type: ignore[attr-defined]
    assert isinstance(err, ValueError)
    assert len(str(err)) < 250 and "'yyyy" in str(err) and str(err).endswith("yyy... (str)")


# ------------------------------------------------------------------ updates


def test_patches_carry_only_the_given_keys(schema: Schema) -> None:
    assert schema.encode_entity("todos", {"text": "b"}, partial=True) == {"text": "b"}
    assert schema.encode_entity("todos", {"meta": {"b": 2}}, partial=True) == {"meta": {"b": 2}}  # merges
    assert schema.encode_entity("todos", {"d2": None, "d": datetime(2024, 1, 1)}, partial=True) == {
        "d2": None, "d": "2024-01-01T00:00:00.000Z"}
    assert schema.encode_entity("todos", {}, partial=True) == {}


def test_patch_rules(schema: Schema) -> None:
    with fails(r"Cannot change the 'id' of an entity in collection 'todos'"):
        schema.encode_entity("todos", {"id": "x", "text": "a"}, partial=True)
    with fails(r"'owner_id' in collection 'todos': got None, but the attribute is required and cannot be"):
        schema.encode_entity("todos", {"owner_id": None}, partial=True)
    with fails(r"Unknown attribute 'zz'"):
        schema.encode_entity("todos", {"zz": 1}, partial=True)
    with fails(r"'text'.*one of"):
        schema.encode_entity("todos", {"text": "zz"}, partial=True)


def test_a_python_set_in_a_patch_replaces_the_stored_set(schema: Schema) -> None:
    current = insert(schema, tags={"a", "b"})
    current["tags"]["old"] = False  # removed earlier: stays removed, not re-sent
    patch = schema.encode_entity("todos", {"tags": {"b", "c"}}, partial=True, current=current)
    assert patch == {"tags": {"a": False, "b": True, "c": True}}
    # Without the current document only additions can be expressed.
    assert schema.encode_entity("todos", {"tags": {"c"}}, partial=True) == {"tags": {"c": True}}
    # An explicit map is sent as given.
    assert schema.encode_entity("todos", {"tags": {"a": False}}, partial=True, current=current) == {
        "tags": {"a": False}}
    assert schema.encode_entity("todos", {"tags": set()}, partial=True, current=current) == {
        "tags": {"a": False, "b": False}}


# ------------------------------------------------------------------ decoding


def test_decode_dates_sets_and_records(schema: Schema) -> None:
    doc = {
        "id": "t1", "d": "2024-01-01T00:00:00.123Z", "d2": None,
        "tags": {"a": True, "gone": False}, "nums": {"1": True, "2.5": True, "3": False},
        "flags": {"true": True, "false": False}, "dates": {"2024-01-01T00:00:00.000Z": True},
        "meta": {"a": "x"}, "j": {"d": "2024-01-01T00:00:00.000Z"}, "extra": 1,
    }
    out = schema.decode_entity("todos", doc)
    assert out["d"] == datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC) and out["d"].tzinfo is not None
    assert out["d2"] is None
    assert out["tags"] == {"a"}
    assert out["nums"] == {1, 2.5} and all(type(n) in (int, float) for n in out["nums"])
    assert out["flags"] == {True}
    assert out["dates"] == {datetime(2024, 1, 1, tzinfo=UTC)}
    assert out["j"] == {"d": "2024-01-01T00:00:00.000Z"}  # json is not interpreted
    assert out["extra"] == 1  # keys outside the schema pass through
    # The input is untouched.
    assert doc["d"] == "2024-01-01T00:00:00.123Z" and doc["tags"] == {"a": True, "gone": False}


@pytest.mark.parametrize(
    "wire, expected",
    [
        ("2024-01-01T00:00:00.000Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T02:00:00.000+02:00", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01", datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_decode_date_forms(schema: Schema, wire: str, expected: datetime) -> None:
    out = schema.decode_entity("todos", {"d": wire})["d"]
    assert out == expected and out.utcoffset() == timedelta(0)


def test_decode_shows_stored_values_of_the_wrong_type_as_stored_and_warns_once(
        schema: Schema, caplog: pytest.LogCaptureFixture) -> None:
    # One bad value from the server must not make every read of the collection raise.
    _codec._reported.clear()
    with caplog.at_level(logging.WARNING, logger="triplit_sync.schema"):
        assert schema.decode_entity("todos", {"d": 5, "tags": "a"}) == {"d": 5, "tags": "a"}
        assert schema.decode_entity("todos", {"d": True})["d"] is True
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages  # once per attribute
    assert any("todos.d" in m and "ISO-8601" in m for m in messages)
    assert any("todos.tags" in m and "stored set" in m for m in messages)


def test_decode_reads_the_http_serialized_form_too(schema: Schema) -> None:
    out = schema.decode_entity("todos", {"tags": ["a", "b"], "nums": [1, 2.5],
                                         "dates": ["2024-01-01T00:00:00.000Z"]})
    assert out["tags"] == {"a", "b"} and out["nums"] == {1, 2.5}
    assert out["dates"] == {datetime(2024, 1, 1, tzinfo=UTC)}


def test_decode_included_relations_with_their_collections_schema() -> None:
    s = Schema({
        "posts": {"schema": S.Schema({"id": S.Id(), "author_id": S.String()}),
                  "relationships": {"author": S.RelationById("users", "$author_id"),
                                    "siblings": S.RelationMany(
                                        "posts", where=[["author_id", "=", "$author_id"]])}},
        "users": {"schema": S.Schema({"id": S.Id(), "joined": S.Date(), "tags": S.Set(S.String())})},
    })
    user = {"id": "u", "joined": "2024-01-01T00:00:00.000Z", "tags": {"x": True}}
    out = s.decode_entity("posts", {"id": "p", "author_id": "u", "author": user,
                                    "siblings": [{"id": "p2", "author_id": "u", "author": user}]})
    assert out["author"] == {"id": "u", "joined": datetime(2024, 1, 1, tzinfo=UTC), "tags": {"x"}}
    assert out["siblings"][0]["author"]["tags"] == {"x"}
    assert s.decode_entity("posts", {"id": "p", "author": None})["author"] is None


def test_encode_then_decode_gives_the_values_back(schema: Schema) -> None:
    values = {"id": "t1", "text": "b", "n": 1.5, "b": True,
              "d": datetime(2024, 5, 6, 7, 8, 9, 10000, tzinfo=UTC),
              "tags": {"p", "q"}, "nums": {1, 2.25}, "flags": {False}, "meta": {"a": "m", "b": 2},
              "j": {"k": [1, "2"]}, "owner_id": "u", "dates": {datetime(2020, 1, 1, tzinfo=UTC)}}
    doc = schema.encode_entity("todos", values)
    decoded = schema.decode_entity("todos", doc)
    assert {k: decoded[k] for k in values} == values
    # The wire form is accepted as input and comes out unchanged (idempotent encoding).
    assert schema.encode_entity("todos", doc) == doc


def test_unknown_collections_decode_as_a_copy(schema: Schema) -> None:
    doc = {"id": "x", "d": "2024-01-01T00:00:00.000Z"}
    out = schema.decode_entity("other", doc)
    assert out == doc and out is not doc


def test_encode_value_for_filters(schema: Schema) -> None:
    assert schema.encode_value("todos", "d", datetime(2024, 1, 1)) == "2024-01-01T00:00:00.000Z"
    assert schema.encode_value("todos", "dates", date(2024, 1, 1)) == "2024-01-01T00:00:00.000Z"  # one item
    # A single set item is encoded as an item value: set filters compare items, not key text.
    assert schema.encode_value("todos", "nums", 2.0) == 2.0
    assert schema.encode_value("todos", "flags", True) is True
    assert schema.encode_value("todos", "tags", {"a"}) == {"a": True}  # a whole set
    assert schema.encode_value("todos", "meta.b", 3) == 3
    assert schema.encode_value("todos", "owner.x", 3) == 3
    assert schema.encode_value("todos", "d2", None) is None
    with fails(r"'meta\.b' in collection 'todos': expected a number"):
        schema.encode_value("todos", "meta.b", "3")
    with fails(r"Unknown attribute 'nope'"):
        schema.encode_value("todos", "nope", 1)


def test_sample_schema_encodes_a_todo() -> None:
    sample = Schema.from_file(SAMPLE_SCHEMA)
    doc = sample.encode_entity("todos", {"text": "hi", "owner": "alice"})
    assert set(doc) == {"id", "text", "owner", "completed", "created_at"}
    assert doc["completed"] is False and ISO_RE.match(doc["created_at"])
    assert sample.encode_entity("messages", {"text": "t", "author_id": "a", "to": None})["to"] is None


# ------------------------------------------------------------------ without a schema


def test_plain_codec_passes_json_through() -> None:
    entity = {"id": "n1", "a": 1, "b": [1, {"c": None}], "s": "x", "f": 1.5, "t": True}
    assert PLAIN.encode_entity("notes", entity) == entity
    out = PLAIN.encode_entity("notes", {"when": datetime(2024, 1, 1), "tags": {"x", 1}, "pair": (1, 2)})
    assert out["when"] == "2024-01-01T00:00:00.000Z" and out["tags"] == {"x": True, "1": True}
    assert out["pair"] == [1, 2] and len(out["id"]) == 21
    assert PLAIN.encode_entity("notes", {"a": 2}, partial=True) == {"a": 2}
    doc = {"id": "n1", "when": "2024-01-01T00:00:00.000Z"}
    assert PLAIN.decode_entity("notes", doc) == doc and PLAIN.decode_entity("notes", doc) is not doc


def test_plain_codec_rejects_non_json_values() -> None:
    with fails(r"'b\.c\[0\]' in collection 'notes': expected a JSON value .* got b'x' \(bytes\)"):
        PLAIN.encode_entity("notes", {"b": {"c": [b"x"]}})
    with fails(r"'f' in collection 'notes': expected a finite number"):
        PLAIN.encode_entity("notes", {"f": float("inf")})
    with fails(r"Cannot change the 'id'"):
        PLAIN.encode_entity("notes", {"id": "x"}, partial=True)
    with fails(r"'id' in collection 'notes': expected a string"):
        PLAIN.encode_entity("notes", {"id": 3})
    with fails(r"must be a dict"):
        PLAIN.encode_entity("notes", "x")  # type: ignore[arg-type]
    with fails(r"set items that are str, number, bool or datetime, got \(1, 2\)"):
        PLAIN.encode_entity("notes", {"s": {(1, 2)}})


# ------------------------------------------------------------------ numbers as JS prints them


def test_number_keys_match_javascript_string_conversion() -> None:
    # [value, String(value)] pairs printed by Node 20.
    pairs = [
        (0, "0"), (-0.0, "0"), (1, "1"), (-1, "-1"), (0.1, "0.1"), (1.5, "1.5"), (123.456, "123.456"),
        (1e21, "1e+21"), (1e20, "100000000000000000000"), (1e-6, "0.000001"), (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"), (2.5e300, "2.5e+300"), (-3.75e-10, "-3.75e-10"), (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"), (0.000123, "0.000123"),
        (1234.5e10, "12345000000000"), (1 / 3, "0.3333333333333333"), (2.0 ** 53, "9007199254740992"),
        (1e16, "10000000000000000"), (1.25e16, "12500000000000000"),
    ]
    assert [(v, js_number_str(v)) for v, _ in pairs] == pairs
