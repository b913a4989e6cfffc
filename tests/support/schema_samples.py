"""Schemas shared by the schema tests.

``rich_schema()`` is the Python twin of tests/fixtures/schema_js_builder.mjs: every builder
function of ``S`` once, so its JSON must equal tests/fixtures/schema-js-built.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from triplit_sync.schema import S, Schema

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SAMPLE_SCHEMA = FIXTURES / "sample-schema.json"
JS_BUILT = FIXTURES / "schema-js-built.json"

# hashObject(schema.collections) computed by @triplit/db 1.1.10 under Node (schema_js_hash.mjs).
SAMPLE_HASH_FROM_NODE = 560748169
JS_BUILT_HASH_FROM_NODE = 1760055287


def load_json(path: Path) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)  # type: ignore[no-any-return]


def rich_schema() -> Schema:
    return Schema({
        "todos": {
            "schema": S.Schema({
                "id": S.Id(),
                "text": S.String(enum=["a", "b"], default="a"),
                "n": S.Number(default=3, nullable=True),
                "b": S.Boolean(default=False),
                "d": S.Date(default=S.Default.now()),
                "d2": S.Optional(S.Date()),
                "tags": S.Set(S.String(), default=S.Default.Set.empty()),
                "nums": S.Set(S.Number(), nullable=True),
                "meta": S.Record({"a": S.String(), "b": S.Optional(S.Number())}),
                "j": S.Json(),
                "u": S.String(default=S.Default.Id.uuidv4()),
                "u7": S.String(default=S.Default.Id.uuidv7()),
                "nn": S.String(default=S.Default.Id.nanoid(10)),
                "dn": S.Date(default=S.Default.Date.now()),
                "optrec": S.Optional(S.Record({"x": S.Number()})),
                "recn": S.Record({"x": S.Number()}, nullable=True),
                "owner_id": S.String(),
                "dates": S.Optional(S.Set(S.Date())),
                "flags": S.Optional(S.Set(S.Boolean())),
            }),
            "relationships": {
                "owner": S.RelationById("users", "$owner_id"),
                "many": S.RelationMany("users", where=[["x", "=", 1]], order=[["x", "ASC"]], limit=3),
                "one": S.RelationOne("users", {"where": [["x", "=", 1]]}),
            },
        },
        "users": {"schema": S.Schema({"id": S.Id(format="uuidv4"), "x": S.Number()})},
    })
