"""Schema building blocks: data types, relations and collections, and their JSON form.

Every object here is a thin, typed view over the server's JSON schema format; ``to_json()``
gives exactly what ``Schema as S`` from ``@triplit/db`` 1.1 produces (same keys, same order,
keys the JS builder leaves ``undefined`` omitted), and ``*_from_json`` reads it back and checks
it as the server would.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping  # the abc itself: isinstance with typing.Mapping is slow
from typing import Any, ClassVar, Dict, List, Optional, Union

from ..errors import SchemaValidationError

__all__ = [
    "DataType",
    "StringType",
    "NumberType",
    "BooleanType",
    "DateType",
    "JsonType",
    "SetType",
    "RecordType",
    "Relation",
    "Collection",
    "type_from_json",
    "DEFAULT_FUNCTIONS",
    "PRIMITIVE_TYPES",
]

#: default functions the server accepts (``uuid`` is a deprecated alias of ``nanoid``)
DEFAULT_FUNCTIONS = frozenset(["now", "nanoid", "uuid", "uuidv4", "uuidv7", "Set.empty"])
#: types allowed as set items
PRIMITIVE_TYPES = frozenset(["string", "number", "boolean", "date"])
_NAME_RE = re.compile(r"^[a-zA-Z0-9_]+$")
_PERMISSION_OPS = ("read", "insert", "update", "postUpdate", "delete")


def _fail(where: str, problem: str) -> SchemaValidationError:
    return SchemaValidationError(f"Invalid schema at {where}: {problem}")


def short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class DataType:
    """An attribute type: ``type`` name plus its ``config`` (nullable, optional, default, enum).

    Build them with ``S`` (``S.String()``, ``S.Set(S.Number())``...), not directly.
    """

    type: ClassVar[str] = ""
    __slots__ = ("config",)

    def __init__(self, config: Optional[Mapping[str, Any]] = None) -> None:
        self.config: Dict[str, Any] = dict(config) if config else {}

    @property
    def optional(self) -> bool:
        """Declared with ``S.Optional``: may be absent (or ``None``)."""
        return self.config.get("optional") is True

    @property
    def nullable(self) -> bool:
        """Declared ``nullable=True``: may be ``None`` (or absent)."""
        return self.config.get("nullable") is True

    @property
    def allows_none(self) -> bool:
        """Optional or nullable; Triplit 1.x treats both alike (absent, or ``None``)."""
        return self.config.get("optional") is True or self.config.get("nullable") is True

    @property
    def default(self) -> Any:
        """The declared default: a constant, a ``{"func", "args"}`` dict, or ``None``."""
        return self.config.get("default")

    def to_json(self) -> Dict[str, Any]:
        """The server's JSON form of this type."""
        return {"type": self.type, "config": copy.deepcopy(self.config)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataType) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


class StringType(DataType):
    """A string; ``enum`` restricts it to a list of values."""

    type = "string"
    __slots__ = ()

    @property
    def enum(self) -> Optional[List[str]]:
        return self.config.get("enum")


class NumberType(DataType):
    """A number (int or float; no NaN or infinity, which JSON cannot carry)."""

    type = "number"
    __slots__ = ()


class BooleanType(DataType):
    """``True`` or ``False``."""

    type = "boolean"
    __slots__ = ()


class DateType(DataType):
    """A point in time: a ``datetime`` in Python, an ISO-8601 UTC string on the wire."""

    type = "date"
    __slots__ = ()


class JsonType(DataType):
    """Any JSON value, stored as given (objects merge key by key on update)."""

    type = "json"
    __slots__ = ()


class SetType(DataType):
    """A set of primitive ``items``: a Python ``set`` here, an ``{item: true}`` map on the wire."""

    type = "set"
    __slots__ = ("items",)

    def __init__(self, items: DataType, config: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(config)
        self.items = items

    def to_json(self) -> Dict[str, Any]:
        return {"type": "set", "items": self.items.to_json(), "config": copy.deepcopy(self.config)}

    def __repr__(self) -> str:
        return f"SetType({self.items!r}, {self.config!r})"


class RecordType(DataType):
    """A nested object with named ``properties``; a collection's schema is one too."""

    type = "record"
    __slots__ = ("properties",)

    def __init__(self, properties: Mapping[str, DataType],
                 config: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(config)
        self.properties: Dict[str, DataType] = dict(properties)

    def to_json(self) -> Dict[str, Any]:
        return {
            "type": "record",
            "config": copy.deepcopy(self.config),
            "properties": {k: v.to_json() for k, v in self.properties.items()},
        }

    def __repr__(self) -> str:
        return f"RecordType({self.properties!r}, {self.config!r})"


_TYPES: Dict[str, type] = {
    t.type: t for t in (StringType, NumberType, BooleanType, DateType, JsonType, SetType, RecordType)
}


def type_from_json(obj: Any, where: str = "type") -> DataType:
    """Parse one attribute type from its JSON form; ``where`` names it in error messages."""
    if isinstance(obj, DataType):
        return obj
    if not isinstance(obj, Mapping):
        raise _fail(where, f"expected a type object like {{'type': 'string'}}, got {short_repr(obj)}")
    name = obj.get("type")
    cls = _TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise _fail(where, f"unknown type {short_repr(name)}; known types: {', '.join(sorted(_TYPES))}")
    config = obj.get("config")
    if config is not None and not isinstance(config, Mapping):
        raise _fail(where, f"config must be an object, got {short_repr(config)}")
    config = config or {}
    for flag in ("nullable", "optional"):
        if config.get(flag) is not None and not isinstance(config.get(flag), bool):
            raise _fail(where, f"option {flag} must be a boolean, got {short_repr(config.get(flag))}")
    _check_default(str(name), config.get("default"), where)
    result: DataType
    if cls is SetType:
        items = type_from_json(obj.get("items"), f"{where}.items")
        if items.type not in PRIMITIVE_TYPES:
            raise _fail(where, f"set items must be string, number, boolean or date, not {items.type}")
        result = SetType(items, config)
    elif cls is RecordType:
        props = obj.get("properties")
        if not isinstance(props, Mapping):
            raise _fail(where, f"a record needs a 'properties' object, got {short_repr(props)}")
        parsed = {}
        for key, value in props.items():
            if not isinstance(key, str) or not _NAME_RE.match(key):
                raise _fail(where, f"property name {key!r} may only hold letters, digits and underscores")
            parsed[key] = type_from_json(value, f"{where}.{key}")
        result = RecordType(parsed, config)
    else:
        if cls is StringType and config.get("enum") is not None:
            enum = config["enum"]
            if not isinstance(enum, list) or not all(isinstance(v, str) for v in enum):
                raise _fail(where, f"enum must be a list of strings, got {short_repr(enum)}")
        result = cls(config)
    return result


def _check_default(type_name: str, default: Any, where: str) -> None:
    if not (isinstance(default, Mapping) and "func" in default):
        if default is not None and type_name == "record":
            raise _fail(where, "a record cannot have a default")
        return  # constants are checked against the type when codecs are compiled
    func, args = default.get("func"), default.get("args")
    if func not in DEFAULT_FUNCTIONS:
        raise _fail(where, f"unknown default function {short_repr(func)}; "
                           f"known: {', '.join(sorted(DEFAULT_FUNCTIONS))}")
    allowed = {"now": ("date", "string"), "nanoid": ("string",), "uuid": ("string",), "uuidv4": ("string",),
               "uuidv7": ("string",), "Set.empty": ("set",)}[func]
    if type_name not in allowed:
        raise _fail(where, f"default function {func!r} does not fit a {type_name} attribute")
    if func in ("nanoid", "uuid") and args is not None:
        size = args[0] if isinstance(args, list) and args else 21
        if not isinstance(args, list) or not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise _fail(where, f"default function {func!r} takes [length] as args, got {short_repr(args)}")
    elif func not in ("nanoid", "uuid") and args is not None:
        raise _fail(where, f"default function {func!r} takes no args, got {short_repr(args)}")


class Relation:
    """A named link to another collection: a query (with ``$``-variables) and a cardinality.

    >>> from triplit_sync.schema import S
    >>> S.RelationById("users", "$owner_id").to_json()["query"]
    {'collectionName': 'users', 'where': [['id', '=', '$owner_id']]}
    """

    __slots__ = ("query", "cardinality")

    def __init__(self, query: Mapping[str, Any], cardinality: str) -> None:
        if cardinality not in ("one", "many"):
            raise SchemaValidationError(f"relation cardinality must be 'one' or 'many', got {cardinality!r}")
        if not isinstance(query, Mapping) or not isinstance(query.get("collectionName"), str):
            raise SchemaValidationError(
                f"relation query needs a 'collectionName' string, got {short_repr(query)}")
        self.query: Dict[str, Any] = copy.deepcopy(dict(query))
        self.cardinality = cardinality

    @property
    def collection_name(self) -> str:
        """The related collection."""
        return str(self.query["collectionName"])

    def to_json(self) -> Dict[str, Any]:
        return {"query": copy.deepcopy(self.query), "cardinality": self.cardinality}

    @classmethod
    def from_json(cls, obj: Any, where: str = "relation") -> "Relation":
        if isinstance(obj, Relation):
            return obj
        if not isinstance(obj, Mapping):
            raise _fail(where, f"expected {{'query': ..., 'cardinality': ...}}, got {short_repr(obj)}")
        try:
            return cls(obj.get("query"), obj.get("cardinality"))  # type: ignore[arg-type]
        except SchemaValidationError as e:
            raise _fail(where, e.message) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Relation) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Relation({self.query!r}, {self.cardinality!r})"


class Collection:
    """One collection: its attributes, optional relationships and per-role permissions.

    >>> from triplit_sync.schema import S
    >>> todos = Collection(
    ...     {"id": S.Id(), "text": S.String(), "owner_id": S.String()},
    ...     relationships={"owner": S.RelationById("users", "$owner_id")},
    ...     permissions={"user": {"read": {"filter": [True]}}},
    ... )
    """

    __slots__ = ("schema", "relationships", "permissions")

    def __init__(
        self,
        schema: Union[RecordType, Mapping[str, DataType]],
        relationships: Optional[Mapping[str, Union[Relation, Mapping[str, Any]]]] = None,
        permissions: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.schema: RecordType = schema if isinstance(schema, RecordType) else RecordType(
            {k: type_from_json(v, f"schema.{k}") for k, v in schema.items()})
        self.relationships: Optional[Dict[str, Relation]] = (
            None if relationships is None
            else {k: Relation.from_json(v, f"relationships.{k}") for k, v in relationships.items()}
        )
        self.permissions: Optional[Dict[str, Any]] = (
            None if permissions is None else copy.deepcopy(dict(permissions))
        )

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"schema": self.schema.to_json()}
        if self.relationships is not None:
            out["relationships"] = {k: v.to_json() for k, v in self.relationships.items()}
        if self.permissions is not None:
            out["permissions"] = copy.deepcopy(self.permissions)
        return out

    @classmethod
    def from_json(cls, obj: Any, name: str = "collection") -> "Collection":
        """Parse and check one collection's JSON (``{schema, relationships?, permissions?}``)."""
        if isinstance(obj, Collection):
            return obj
        where = f"collections.{name}"
        if not isinstance(obj, Mapping):
            raise _fail(where, f"expected {{'schema': ...}}, got {short_repr(obj)}")
        record = type_from_json(obj.get("schema"), f"{where}.schema")
        if not isinstance(record, RecordType):
            raise _fail(f"{where}.schema", f"a collection schema must be a record, not {record.type}")
        id_type = record.properties.get("id")
        if not isinstance(id_type, StringType):
            raise _fail(f"{where}.schema", "the primary key 'id' must be declared as a string (use S.Id())")
        rels = obj.get("relationships")
        if rels is not None and not isinstance(rels, Mapping):
            raise _fail(f"{where}.relationships", f"expected an object, got {short_repr(rels)}")
        for rel_name in rels or ():
            if not isinstance(rel_name, str) or not _NAME_RE.match(rel_name) or rel_name[0] == "_" or \
                    rel_name[0].isdigit():
                raise _fail(f"{where}.relationships", f"bad relation name {rel_name!r}")
            if rel_name in record.properties:
                raise _fail(f"{where}.relationships.{rel_name}",
                            "a relation cannot share its name with an attribute")
        perms = obj.get("permissions")
        _check_permissions(perms, f"{where}.permissions")
        return cls(record, rels, perms)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Collection) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Collection(attributes={list(self.schema.properties)!r}, relationships=" \
               f"{list(self.relationships or ())!r}, roles={list(self.permissions or ())!r})"


def _check_permissions(perms: Any, where: str) -> None:
    if perms is None:
        return
    if not isinstance(perms, Mapping):
        raise _fail(where, f"expected {{role: {{operation: {{'filter': [...]}}}}}}, got {short_repr(perms)}")
    for role, ops in perms.items():
        if ops is None:
            continue
        if not isinstance(ops, Mapping):
            raise _fail(f"{where}.{role}",
                        f"expected {{operation: {{'filter': [...]}}}}, got {short_repr(ops)}")
        for op in _PERMISSION_OPS:
            rule = ops.get(op)
            if rule is None:
                continue
            if not isinstance(rule, Mapping) or not isinstance(rule.get("filter", []), list):
                raise _fail(f"{where}.{role}.{op}", f"expected {{'filter': [...]}}, got {short_repr(rule)}")


def check_collection_name(name: Any) -> None:
    """Raise unless ``name`` is a collection name the server accepts."""
    if not isinstance(name, str) or not name:
        raise _fail("collections", f"collection name must be a non-empty string, got {short_repr(name)}")
    if name[0] == "_" or name[0].isdigit() or not _NAME_RE.match(name):
        raise _fail(
            "collections",
            f"bad collection name {name!r}: "
            "letters, digits and underscores only, not starting with _ or a digit",
        )


def check_roles(roles: Any) -> None:
    """Raise unless ``roles`` is ``{name: {"match": {...}}}``."""
    if roles is None:
        return
    if not isinstance(roles, Mapping):
        raise _fail("roles", f"expected {{name: {{'match': {{...}}}}}}, got {short_repr(roles)}")
    for name, role in roles.items():
        if not isinstance(role, Mapping) or not isinstance(role.get("match"), Mapping):
            raise _fail(f"roles.{name}", f"a role needs a 'match' object, got {short_repr(role)}")
