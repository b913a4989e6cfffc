"""Triplit schemas in Python: declare, load, hash, and encode/decode entity values.

Declare a schema with ``S`` (named as ``Schema as S`` in the JS client) and it produces exactly
the JSON the server uses (``POST /schema`` returns it; ``TriplitTestServer(schema=...)`` takes it):

    from triplit_sync.schema import S, Schema

    schema = Schema(
        collections={
            "todos": {
                "schema": S.Schema({
                    "id": S.Id(),
                    "text": S.String(),
                    "done": S.Boolean(default=False),
                    "created_at": S.Date(default=S.Default.now()),
                    "tags": S.Set(S.String(), default=S.Default.Set.empty()),
                    "owner_id": S.String(),
                }),
                "relationships": {"owner": S.RelationById("users", "$owner_id")},
                "permissions": {"user": {"read": {"filter": [True]}}},
            },
            "users": {"schema": S.Schema({"id": S.Id(), "name": S.String()})},
        },
        roles={"user": {"match": {"sub": "$userId"}}},
    )
    doc = schema.encode_entity("todos", {"text": "hi", "owner_id": "u1"})   # wire form, defaults filled
    schema.decode_entity("todos", doc)["created_at"]                      # an aware datetime

Without a schema, :data:`PLAIN` offers the same ``encode_entity``/``decode_entity`` over plain JSON.

Value mapping (Python <-> wire): ``datetime`` <-> ``"2024-01-01T00:00:00.000Z"`` (naive datetimes
are taken as UTC; decoded ones are aware, in UTC); ``set`` <-> ``{item: true}``; records <-> dicts;
``None`` on an optional attribute <-> ``null`` ("removed").

Updates (``partial=True``) carry only the given keys. Records merge key by key, as on the server.
A set attribute given as a Python set *replaces* the stored set: pass the entity's current
encoded document as ``current`` and every stored item missing from the new set is sent as
``item: false``. Without ``current`` only ``item: true`` entries can be sent, which *adds* the
items (the server's own meaning of an array in ``/update``). An explicit ``{item: bool}`` map
is sent as given, for exact add/remove control.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping  # the abc itself: isinstance with typing.Mapping is slow
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .._util.hash import hash_object
from ..errors import SchemaValidationError
from ._builder import S
from ._codec import RecordCodec, compile_collection, compile_value
from ._ids import nanoid
from ._types import (
    BooleanType,
    Collection,
    DataType,
    DateType,
    JsonType,
    NumberType,
    RecordType,
    Relation,
    SetType,
    StringType,
    check_collection_name,
    check_roles,
)
from ._values import encode_plain

__all__ = [
    "S",
    "Schema",
    "Collection",
    "Relation",
    "DataType",
    "StringType",
    "NumberType",
    "BooleanType",
    "DateType",
    "JsonType",
    "SetType",
    "RecordType",
    "PlainCodec",
    "PLAIN",
    "DEFAULT_ROLES",
    "SchemaArg",
    "encode_plain",
    "load_schema",
]

#: the roles the server uses when a schema declares none
DEFAULT_ROLES: Dict[str, Any] = {
    "anonymous": {"match": {"x-triplit-token-type": "anon"}},
    "authenticated": {"match": {"sub": "$sub"}},
}


def _to_json(value: Any) -> Any:
    """Builder objects (types, relations, collections) to JSON; other values deep-copied."""
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    if isinstance(value, Mapping):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return copy.deepcopy(value)


class Schema:
    """A Triplit schema: collections (attributes, relationships, permissions) and roles.

    Build it with ``S`` (see the module docstring) or load the server's JSON with
    :meth:`from_json` / :meth:`from_file`; :meth:`to_json` gives that JSON back unchanged.

    >>> schema = Schema({"notes": {"schema": S.Schema({"id": S.Id(), "body": S.String()})}})
    >>> schema.collection_names
    ['notes']
    """

    __slots__ = ("_json", "_collections", "_codecs", "_value_codecs")

    def __init__(
        self,
        collections: Mapping[str, Union[Collection, Mapping[str, Any]]],
        roles: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if not isinstance(collections, Mapping):
            raise SchemaValidationError(
                f"collections must be a dict of name -> collection, got {collections!r:.80}")
        data: Dict[str, Any] = {"collections": _to_json(collections)}
        if roles is not None:
            data["roles"] = _to_json(roles)
        self._load(data)

    # -- loading and saving

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Schema":
        """A schema from its JSON form: ``{"collections": {...}, "roles"?: {...}}``.

        Also accepts the ``POST /schema`` answer (``{"type": "schema", "schema": {...}}``).
        """
        if isinstance(data, Mapping) and data.get("type") == "schemaless":
            raise SchemaValidationError("The server has no schema (it answered {'type': 'schemaless'})")
        if isinstance(data, Mapping) and data.get("type") == "schema":
            data = data.get("schema")  # type: ignore[assignment]
        if not isinstance(data, Mapping) or not isinstance(data.get("collections"), Mapping):
            raise SchemaValidationError(
                f"A schema must be a dict with a 'collections' object, got {data!r:.80}")
        schema = cls.__new__(cls)
        schema._load(copy.deepcopy(dict(data)))
        return schema

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"]) -> "Schema":
        """A schema from a JSON file (for example one written by :meth:`to_file`)."""
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except ValueError as e:
                raise SchemaValidationError(
                    f"Schema file {os.fspath(path)!r} is not valid JSON: {e}") from None
        return cls.from_json(data)

    def to_json(self) -> Dict[str, Any]:
        """The server's JSON form (a fresh copy; keys in their original order)."""
        return copy.deepcopy(self._json)

    def to_file(self, path: Union[str, "os.PathLike[str]"], indent: int = 2) -> None:
        """Write :meth:`to_json` to ``path`` (UTF-8 JSON)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self._json, f, indent=indent, ensure_ascii=False)
            f.write("\n")

    def _load(self, data: Dict[str, Any]) -> None:
        collections = data["collections"]
        check_roles(data.get("roles"))
        parsed: Dict[str, Collection] = {}
        for name, coll in collections.items():
            check_collection_name(name)
            parsed[name] = Collection.from_json(coll, name)
        for name, coll in parsed.items():
            for rel_name, rel in (coll.relationships or {}).items():
                if rel.collection_name not in parsed:
                    raise SchemaValidationError(
                        f"Invalid schema at collections.{name}.relationships.{rel_name}: it points to the "
                        f"unknown collection {rel.collection_name!r}")
        codecs = {name: compile_collection(name, coll.schema) for name, coll in parsed.items()}
        for name, coll in parsed.items():
            for rel_name, rel in (coll.relationships or {}).items():
                codecs[name].decoders.append((rel_name, _IncludeDecoder(codecs, rel.collection_name)))
        self._json = data
        self._collections = parsed
        self._codecs = codecs
        self._value_codecs: Dict[Any, Any] = {}

    # -- lookups

    @property
    def collection_names(self) -> List[str]:
        """The collections, in declaration order."""
        return list(self._collections)

    def has_collection(self, name: str) -> bool:
        return name in self._collections

    def collection(self, name: str) -> Collection:
        """The parsed collection ``name``; raises :class:`SchemaValidationError` for an unknown one."""
        try:
            return self._collections[name]
        except (KeyError, TypeError):
            raise self._unknown_collection(name) from None

    @property
    def roles(self) -> Optional[Dict[str, Any]]:
        """The declared roles (``{name: {"match": {...}}}``), or ``None`` if the schema declares none."""
        roles = self._json.get("roles")
        return copy.deepcopy(roles) if roles is not None else None

    @property
    def effective_roles(self) -> Dict[str, Any]:
        """The roles the server applies: the declared ones, or :data:`DEFAULT_ROLES`."""
        roles = self._json.get("roles")
        return copy.deepcopy(roles if roles is not None else DEFAULT_ROLES)

    def permissions(self, collection: str) -> Optional[Dict[str, Any]]:
        """``{role: {operation: {"filter": [...]}}}`` of ``collection``, or ``None`` if it has none."""
        perms = self.collection(collection).permissions
        return copy.deepcopy(perms) if perms is not None else None

    def relationships(self, collection: str) -> Dict[str, Relation]:
        """The named relations of ``collection`` (empty if it declares none)."""
        return dict(self.collection(collection).relationships or {})

    def relation(self, collection: str, name: str) -> Optional[Relation]:
        """The relation ``name`` of ``collection`` (``.query``, ``.cardinality``), or ``None``.

        >>> schema.relation("todos", "owner").cardinality   # doctest: +SKIP
        'one'
        """
        return (self.collection(collection).relationships or {}).get(name)

    def attribute_type(self, collection: str, path: Union[str, Sequence[str]]) -> Optional[DataType]:
        """The type at a dotted ``path`` (``"meta.a"``), or ``None`` if there is no such attribute.

        Paths may go through relations (``"owner.name"``) and into ``json`` attributes (any
        deeper path of a json attribute is json).
        """
        parts = path.split(".") if isinstance(path, str) else list(path)
        if not parts:
            return None
        coll = self._collections.get(collection)
        if coll is None:
            return None
        current: Optional[DataType] = coll.schema
        at_root = True
        for part in parts:
            if at_root and coll.relationships and part in coll.relationships:
                coll = self._collections[coll.relationships[part].collection_name]
                current = coll.schema
                continue
            if isinstance(current, RecordType):
                current = current.properties.get(part)
                at_root = False
            elif isinstance(current, JsonType):
                pass
            else:
                return None
            if current is None:
                return None
        return None if current is coll.schema else current

    def hash(self) -> int:
        """The server's ``hashObject(schema.collections)`` for this schema (PROTOCOL.md §8)."""
        return hash_object(self._json["collections"])

    # -- values

    def encode_entity(self, collection: str, entity: Mapping[str, Any], *, partial: bool = False,
                      current: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """The wire document for an insert (``partial=False``) or an update patch (``partial=True``).

        Inserts get their defaults filled (the server does not fill them for synced writes) and
        an id if none is given; every value is checked. ``current`` (updates only) is the
        entity's current encoded document, which lets a Python set replace the stored set.
        Raises :class:`SchemaValidationError` naming the collection, attribute and bad value.

        >>> current = {"id": "t1", "tags": {"b": True}}
        >>> schema.encode_entity("todos", {"tags": {"a"}}, partial=True, current=current)  # doctest: +SKIP
        {'tags': {'b': False, 'a': True}}
        """
        codec = self._codecs.get(collection)
        if codec is None:
            raise self._unknown_collection(collection)
        if partial:
            return codec.encode_patch(entity, current)
        return codec.encode_insert(entity)

    def decode_entity(self, collection: str, doc: Mapping[str, Any]) -> Dict[str, Any]:
        """Python values for a stored or received document (a new top-level dict).

        Dates become aware datetimes, set maps become sets of the ``true`` items, included
        relations are decoded with their collection's schema. Keys outside the schema, and
        nested values that need no conversion, are passed through (not copied). Documents of
        collections the schema does not know are returned as a shallow copy.
        """
        codec = self._codecs.get(collection)
        if codec is None:
            return dict(doc)
        return codec.decode(doc)  # type: ignore[no-any-return]

    def decoder(self, collection: str) -> Callable[[Mapping[str, Any]], Dict[str, Any]]:
        """:meth:`decode_entity` for one collection, looked up once (for decoding many rows)."""
        codec = self._codecs.get(collection)
        return dict if codec is None else codec.decode

    def encode_value(self, collection: str, path: Union[str, Sequence[str]], value: Any) -> Any:
        """One value in wire form for the attribute at ``path`` (for example a filter value).

        A set attribute takes either a whole set (an ``{item: true}`` map comes back) or a single
        item (its encoded item value, as ``has``/``!has`` filters compare them: a date item
        becomes its ISO string, a number stays a number).
        """
        data_type = self.attribute_type(collection, path)
        if data_type is None:
            raise SchemaValidationError(f"Unknown attribute {path!r} in collection {collection!r}")
        if value is None:
            return None
        attribute = path if isinstance(path, str) else ".".join(path)
        item = isinstance(data_type, SetType) and not isinstance(
            value, (set, frozenset, list, tuple, Mapping))
        key = (collection, attribute, item)
        codec = self._value_codecs.get(key)
        if codec is None:
            codec = compile_value(data_type.items if item else data_type,  # type: ignore[attr-defined]
                                  collection, attribute)
            self._value_codecs[key] = codec
        return codec.encode(value)

    def _unknown_collection(self, name: Any) -> SchemaValidationError:
        err = SchemaValidationError(
            f"Unknown collection {name!r}; the schema has: {', '.join(self._collections) or '(none)'}")
        err.collection = name
        err.attribute = None
        return err

    # -- dunder

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self._json == other._json

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        roles = self._json.get("roles")
        return f"Schema(collections={self.collection_names!r}, roles={list(roles) if roles else None!r})"


SchemaArg = Union[None, "Schema", Mapping[str, Any], str, "os.PathLike[str]"]


def load_schema(schema: SchemaArg) -> Optional["Schema"]:
    """A :class:`Schema` from a Schema, a dict in the server's JSON format, or a JSON file path.

        >>> load_schema("schema.json")  # doctest: +SKIP
        Schema(collections=['todos'], roles=None)
    """
    if schema is None or isinstance(schema, Schema):
        return schema
    if isinstance(schema, (str, os.PathLike)):
        return Schema.from_file(schema)
    if isinstance(schema, Mapping):
        return Schema.from_json(schema)
    raise TypeError(f"schema must be a Schema, a dict in the server's JSON format or a file path, "
                    f"not {type(schema).__name__}")


class _IncludeDecoder:
    """Decodes an included relation: one document (cardinality one) or a list of them."""

    __slots__ = ("codecs", "target")

    def __init__(self, codecs: Dict[str, RecordCodec], target: str) -> None:
        self.codecs = codecs
        self.target = target

    def __call__(self, value: Any) -> Any:
        codec = self.codecs[self.target]
        if type(value) is list:
            return [codec.decode(v) for v in value]
        if isinstance(value, Mapping):
            return codec.decode(value)
        return value


class PlainCodec:
    """``encode_entity``/``decode_entity`` for a client without a schema: plain JSON values.

    ``datetime`` becomes an ISO string and a Python set an ``{item: true}`` map (sets in updates
    add items; without a schema there is no telling a set from an object to replace it); other
    non-JSON values raise :class:`SchemaValidationError`. Inserts without an id get a nanoid.
    Decoding returns a shallow copy: strings stay strings, maps stay dicts.

    >>> PLAIN.encode_entity("notes", {"id": "n1", "tags": {"a"}})
    {'id': 'n1', 'tags': {'a': True}}
    """

    __slots__ = ()

    def encode_entity(self, collection: str, entity: Mapping[str, Any], *, partial: bool = False,
                      current: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        if not isinstance(entity, Mapping):
            raise SchemaValidationError(
                f"An entity of collection {collection!r} must be a dict, got {entity!r:.80}")
        out: Dict[str, Any] = {}
        for key, value in entity.items():
            if not isinstance(key, str):
                raise SchemaValidationError(
                    f"Attribute names must be strings; got {key!r:.80} in collection {collection!r}")
            out[key] = encode_plain(value, collection, key)
        if partial:
            if "id" in out:
                raise SchemaValidationError(
                    f"Cannot change the 'id' of an entity in collection {collection!r}: ids are immutable")
        elif "id" not in out or out["id"] is None:
            out["id"] = nanoid()
        elif not isinstance(out["id"], str):
            raise SchemaValidationError(
                f"Invalid value for 'id' in collection {collection!r}: "
                f"expected a string, got {out['id']!r:.80}")
        return out

    def decode_entity(self, collection: str, doc: Mapping[str, Any]) -> Dict[str, Any]:
        return dict(doc)

    def decoder(self, collection: str) -> Callable[[Mapping[str, Any]], Dict[str, Any]]:
        return dict


#: the codec to use when the client has no schema
PLAIN = PlainCodec()
