"""``S``: the schema builder, with the names of ``Schema as S`` from the JS client.

Each function returns the objects of :mod:`triplit_sync._schema_types`, whose ``to_json()`` is
exactly the JSON the JS builder produces for the same call.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping  # the abc itself: isinstance with typing.Mapping is slow
from datetime import date, datetime
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..errors import SchemaValidationError
from ._ids import iso_from_datetime
from ._types import (
    PRIMITIVE_TYPES,
    BooleanType,
    DataType,
    DateType,
    JsonType,
    NumberType,
    RecordType,
    Relation,
    SetType,
    StringType,
    short_repr,
    type_from_json,
)

__all__ = ["S"]

# Used inside class S, whose own ``Optional`` method hides typing.Optional there.
_MaybeBool = Optional[bool]
_MaybeInt = Optional[int]
_MaybeSeq = Optional[Sequence[Any]]
_MaybeStrs = Optional[Sequence[str]]


def _config(enum: Any = None, nullable: Optional[bool] = None, default: Any = None) -> Dict[str, Any]:
    # Key order as the JS builder writes it: enum, nullable, default.
    config: Dict[str, Any] = {}
    if enum is not None:
        config["enum"] = list(enum)
    if nullable is not None:
        config["nullable"] = nullable
    if default is not None:
        config["default"] = copy.deepcopy(default)
    return config


def _func(name: str, args: Optional[List[Any]] = None) -> Dict[str, Any]:
    return {"func": name, "args": args}


class _IdDefaults:
    @staticmethod
    def nanoid(length: Optional[int] = None) -> Dict[str, Any]:
        """A random nanoid (21 characters unless ``length`` is given)."""
        return _func("nanoid", [length] if length else None)

    @staticmethod
    def uuidv4() -> Dict[str, Any]:
        """A random UUID v4."""
        return _func("uuidv4")

    @staticmethod
    def uuidv7() -> Dict[str, Any]:
        """A time-ordered UUID v7."""
        return _func("uuidv7")


class _DateDefaults:
    @staticmethod
    def now() -> Dict[str, Any]:
        """The time of the insert."""
        return _func("now")


class _SetDefaults:
    @staticmethod
    def empty() -> Dict[str, Any]:
        """An empty set."""
        return _func("Set.empty")


class _Defaults:
    """Default-value functions, as ``S.Default`` in JS: ``S.Default.now()``, ``S.Default.Id.uuidv4()``..."""

    Id = _IdDefaults
    Date = _DateDefaults
    Set = _SetDefaults
    now = staticmethod(_DateDefaults.now)


def _query_json(collection_name: str, query: Any, where: Any, order: Any, limit: Any) -> Dict[str, Any]:
    if not isinstance(collection_name, str) or not collection_name:
        raise SchemaValidationError(f"relation needs a collection name, got {short_repr(collection_name)}")
    out: Dict[str, Any] = {"collectionName": collection_name}
    if query is not None:
        to_json = getattr(query, "to_json", None)
        if callable(to_json):
            query = to_json()
        if not isinstance(query, Mapping):
            raise SchemaValidationError(f"relation query must be a dict, got {short_repr(query)}")
        other = query.get("collectionName", collection_name)
        if other != collection_name:
            raise SchemaValidationError(f"relation to {collection_name!r} has a query on {other!r}")
        out.update(copy.deepcopy(dict(query)))
    if where is not None:
        out["where"] = copy.deepcopy(list(where))
    if order is not None:
        out["order"] = copy.deepcopy(list(order))
    if limit is not None:
        out["limit"] = limit
    return out


def _date_default(default: Any) -> Any:
    if isinstance(default, datetime):
        return iso_from_datetime(default)
    if isinstance(default, date):
        return iso_from_datetime(datetime(default.year, default.month, default.day))
    return default


class S:
    """The schema builder, named as ``Schema as S`` in the JS client.

    >>> todo = S.Schema({
    ...     "id": S.Id(),
    ...     "text": S.String(),
    ...     "status": S.String(enum=["todo", "done"], default="todo"),
    ...     "done": S.Boolean(default=False),
    ...     "created_at": S.Date(default=S.Default.now()),
    ...     "tags": S.Set(S.String(), default=S.Default.Set.empty()),
    ...     "meta": S.Optional(S.Record({"a": S.Number()})),
    ... })
    """

    Default = _Defaults

    @staticmethod
    def Id(format: str = "nanoid") -> StringType:  # noqa: A002 - the JS option's name
        """The primary key: a non-null string generated on insert (``nanoid``, ``uuidv4`` or ``uuidv7``)."""
        makers: Dict[str, Callable[[], Dict[str, Any]]] = {
            "nanoid": _IdDefaults.nanoid, "uuidv4": _IdDefaults.uuidv4, "uuidv7": _IdDefaults.uuidv7}
        if format not in makers:
            raise SchemaValidationError(f"S.Id format must be one of {sorted(makers)}, got {format!r}")
        return StringType(_config(nullable=False, default=makers[format]()))

    @staticmethod
    def String(*, nullable: _MaybeBool = None, default: Any = None,
               enum: _MaybeStrs = None) -> StringType:
        """A string, optionally limited to ``enum`` values."""
        if isinstance(enum, str):
            raise SchemaValidationError(f"enum must be a list of strings, got the string {enum!r}")
        return StringType(_config(enum=enum, nullable=nullable, default=default))

    @staticmethod
    def Number(*, nullable: _MaybeBool = None, default: Any = None) -> NumberType:
        """A number."""
        return NumberType(_config(nullable=nullable, default=default))

    @staticmethod
    def Boolean(*, nullable: _MaybeBool = None, default: Any = None) -> BooleanType:
        """A boolean."""
        return BooleanType(_config(nullable=nullable, default=default))

    @staticmethod
    def Date(*, nullable: _MaybeBool = None, default: Any = None) -> DateType:
        """A date and time; ``default`` may be ``S.Default.now()`` or a ``datetime``."""
        return DateType(_config(nullable=nullable, default=_date_default(default)))

    @staticmethod
    def Json(*, nullable: _MaybeBool = None, default: Any = None) -> JsonType:
        """Any JSON value."""
        return JsonType(_config(nullable=nullable, default=default))

    @staticmethod
    def Set(items: DataType, *, nullable: _MaybeBool = None, default: Any = None) -> SetType:
        """A set of ``items`` (``S.String()``, ``S.Number()``, ``S.Boolean()`` or ``S.Date()``)."""
        if not isinstance(items, DataType) or items.type not in PRIMITIVE_TYPES:
            raise SchemaValidationError(
                f"S.Set items must be S.String/Number/Boolean/Date(), got {short_repr(items)}")
        if isinstance(default, (set, frozenset)):
            default = sorted(default, key=repr)
        elif isinstance(default, tuple):
            default = list(default)
        return SetType(items, _config(nullable=nullable, default=default))

    @staticmethod
    def Record(properties: Mapping[str, DataType], *, nullable: _MaybeBool = None) -> RecordType:
        """A nested object with its own typed ``properties``."""
        if not isinstance(properties, Mapping):
            raise SchemaValidationError(
                f"S.Record takes a dict of attribute types, got {short_repr(properties)}")
        parsed = {k: type_from_json(v, f"record.{k}") for k, v in properties.items()}
        return RecordType(parsed, _config(nullable=nullable))

    @staticmethod
    def Schema(properties: Mapping[str, DataType]) -> RecordType:
        """A collection's attributes (a record; must include ``"id": S.Id()``)."""
        return S.Record(properties)

    @staticmethod
    def Optional(data_type: DataType) -> DataType:
        """The same type, but the attribute may be left out (or set to ``None``)."""
        if not isinstance(data_type, DataType):
            raise SchemaValidationError(
                f"S.Optional takes a type such as S.String(), got {short_repr(data_type)}")
        result = copy.copy(data_type)
        result.config = dict(data_type.config)
        result.config["optional"] = True
        return result

    @staticmethod
    def RelationMany(collection_name: str, query: Any = None, *, where: _MaybeSeq = None,
                     order: _MaybeSeq = None, limit: _MaybeInt = None) -> Relation:
        """All entities of ``collection_name`` matching the query (``$attr`` refers to this entity)."""
        return Relation(_query_json(collection_name, query, where, order, limit), "many")

    @staticmethod
    def RelationOne(collection_name: str, query: Any = None, *, where: _MaybeSeq = None,
                    order: _MaybeSeq = None, limit: _MaybeInt = None) -> Relation:
        """The first entity of ``collection_name`` matching the query, or ``None``."""
        return Relation(_query_json(collection_name, query, where, order, limit), "one")

    @staticmethod
    def RelationById(collection_name: str, entity_id: str) -> Relation:
        """The entity of ``collection_name`` whose id is ``entity_id`` (usually ``"$some_attr"``)."""
        return Relation(_query_json(collection_name, None, [["id", "=", entity_id]], None, None), "one")

    @staticmethod
    def Collections(collections: Mapping[str, Any]) -> Dict[str, Any]:
        """Returns ``collections`` unchanged (for code that mirrors the JS ``S.Collections``)."""
        return dict(collections)

    @staticmethod
    def Filter(filter: Any) -> Any:  # noqa: A002
        """Returns ``filter`` unchanged (for code that mirrors the JS ``S.Filter``)."""
        return filter
