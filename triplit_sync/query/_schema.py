"""The server's JSON schema, read the way its query preparation reads it.

Attribute paths walk through records, ``json`` attributes (anything below one is json) and
relations (``collections[c].relationships[name] = {"query": {...}, "cardinality": "one"|"many"}``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import InvalidQueryError
from .filters import SET_PREFIX

Collections = Mapping[str, Any]

_BASE = ["isDefined"]
_CMP = ["=", "!=", "<", ">", "<=", ">="]
_COLL = ["has", "!has"]
_ITEM = ["in", "nin"]
_SUPPORTED: Dict[str, List[str]] = {
    "boolean": _BASE + _CMP,
    "date": _BASE + _CMP,
    "number": _BASE + _CMP + _ITEM,
    "record": _BASE,
    "string": _BASE + _CMP + _ITEM + ["like", "nlike"],
}
_SUPPORTED["json"] = list(
    dict.fromkeys(_SUPPORTED["boolean"] + _SUPPORTED["number"] + _SUPPORTED["string"] + _SUPPORTED["record"] + _COLL)
)


def supported_operations(attr: Mapping[str, Any]) -> List[str]:
    """Operators the server accepts for an attribute type (set ones carry the ``SET_`` prefix)."""
    t = attr.get("type")
    if t == "set":
        return [SET_PREFIX + o for o in _BASE + _COLL] + [
            SET_PREFIX + o for o in supported_operations(attr.get("items") or {})
        ]
    if t in _SUPPORTED:
        return _SUPPORTED[t]
    raise InvalidQueryError(f"Unrecognized attribute type {t!r}")


def collections_of(schema: Optional[Mapping[str, Any]]) -> Optional[Collections]:
    """Accept a whole schema (``{"collections": ...}``), a ``/schema`` response, or the collections map."""
    if schema is None:
        return None
    if not isinstance(schema, Mapping):
        raise InvalidQueryError(f"schema must be a JSON object, got {type(schema).__name__}")
    if schema.get("type") == "schema" and isinstance(schema.get("schema"), Mapping):
        schema = schema["schema"]
    if "collections" in schema and isinstance(schema["collections"], Mapping):
        return schema["collections"]
    if schema.get("type") == "schemaless":
        return None
    return schema


def is_relation(attr: Any) -> bool:
    return isinstance(attr, Mapping) and "query" in attr


class Traverser:
    """``createSchemaTraverser``: walks attribute paths through records, json and relations."""

    def __init__(self, schema: Collections, collection: str) -> None:
        self.schema = schema
        self.collection = collection
        self.at_root = True
        coll = schema.get(collection)
        self.current: Any = coll.get("schema") if isinstance(coll, Mapping) else None

    def get(self, attribute: str) -> "Traverser":
        cur = self.current
        if cur is None:
            return self
        if is_relation(cur):
            t = Traverser(self.schema, cur["query"].get("collectionName"))
            return t.get(attribute)
        rels = (self.schema.get(self.collection) or {}).get("relationships") or {}
        if self.at_root and attribute in rels:
            self.current = rels[attribute]
        elif cur.get("type") == "record":
            self.current = (cur.get("properties") or {}).get(attribute)
            self.at_root = False
        elif cur.get("type") == "json":
            self.at_root = False
        else:
            self.current = None
        return self


def schema_entries(path: Sequence[str], schema: Collections, collection: str) -> List[Tuple[List[str], Any]]:
    """``createSchemaEntriesIterator``: (path so far, attribute) for every step of ``path``."""
    t = Traverser(schema, collection)
    out = []
    walked: List[str] = []
    for p in path:
        t = t.get(p)
        walked.append(p)
        out.append((list(walked), t.current))
    return out


def attribute_at(path: Sequence[str], schema: Collections, collection: str) -> Any:
    t = Traverser(schema, collection)
    for p in path:
        t = t.get(p)
    return t.current
