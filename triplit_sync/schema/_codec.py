"""Value codecs: Python values <-> the encoded (wire) form of entities (PROTOCOL.md §3.2).

A codec is compiled once per collection (``compile_collection``) into closures per attribute,
so encoding or decoding a row does a dict lookup and one call per attribute, and decoding
only visits attributes whose wire form differs from the Python one (dates, sets, records
holding those, relation includes).

Encoded form: dates are ``"2024-01-01T00:00:00.000Z"`` strings, sets are ``{item: bool}`` maps
(``false`` means absent), records are dicts, ``None`` on an optional attribute means "removed".
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping  # the abc itself: isinstance with typing.Mapping is slow
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple

from .._util.redact import redact
from ..errors import SchemaValidationError
from ._ids import nanoid, now_iso, uuid4, uuid7
from ._values import (
    as_number,
    decode_date,
    describe,
    encode_date,
    encode_plain,
    invalid_value,
    js_number_str,
    parse_number_key,
    schema_error,
)

if TYPE_CHECKING:
    from ._types import DataType, RecordType

__all__ = ["RecordCodec", "compile_collection", "compile_value"]

logger = logging.getLogger(__name__)

_UTC = timezone.utc

Encoder = Callable[[Any], Any]
Patcher = Callable[[Any, Any], Any]
Decoder = Callable[[Any], Any]

# ----------------------------------------------------------------------------- per type


def _expected(data_type: "DataType") -> str:
    kind = data_type.type
    if kind == "string":
        enum = getattr(data_type, "enum", None)
        return f"one of {enum!r}" if enum else "a string"
    if kind == "set":
        return f"a set of {data_type.items.type}s"  # type: ignore[attr-defined]
    return {"number": "a number", "boolean": "a boolean", "date": "a datetime (or an ISO-8601 string)",
            "json": "a JSON value", "record": "a dict"}.get(kind, kind)


class _Codec:
    """What one attribute needs: ``encode`` (full value), ``patch`` (update, or None = encode),
    ``decode`` (None when the wire value is already the Python value) and ``default``."""

    __slots__ = ("encode", "patch", "decode", "default")

    def __init__(self, encode: Encoder, patch: Optional[Patcher], decode: Optional[Decoder],
                 default: Optional[Callable[[], Any]] = None) -> None:
        self.encode = encode
        self.patch = patch
        self.decode = decode
        self.default = default


def _item_codec(items: "DataType", collection: str,
                attribute: str) -> Tuple[Encoder, Encoder, Decoder, Decoder]:
    """For set items: value -> key, key text -> normalized key, key -> value, serialized item -> value."""
    kind = items.type
    what = f"set items of type {kind}"

    if kind == "string":
        def key(v: Any) -> str:
            if isinstance(v, str):
                return v if type(v) is str else str.__str__(v)
            raise invalid_value(collection, attribute, what, v)
        return key, key, (lambda k: k), (lambda v: v)

    if kind == "number":
        def num_key(v: Any) -> str:
            n = as_number(v)
            if n is None:
                raise invalid_value(collection, attribute, what, v)
            return js_number_str(n)

        def num_text(k: str) -> str:
            try:
                n = float(k)
            except ValueError:
                raise invalid_value(collection, attribute, what, k) from None
            if not math.isfinite(n):
                raise invalid_value(collection, attribute, what, k)
            return js_number_str(n)
        return num_key, num_text, parse_number_key, (lambda v: v)

    if kind == "boolean":
        def bool_key(v: Any) -> str:
            if v is True or v is False:
                return "true" if v else "false"
            raise invalid_value(collection, attribute, what, v)

        def bool_text(k: str) -> str:
            if k in ("true", "false"):
                return k
            raise invalid_value(collection, attribute, what, k)
        return bool_key, bool_text, (lambda k: k == "true"), (lambda v: v)

    def date_key(v: Any) -> str:
        iso = encode_date(v)
        if iso is None:
            raise invalid_value(collection, attribute, f"{what} (datetime or ISO-8601 string)", v)
        return iso

    def date_value(k: Any) -> datetime:
        dt = decode_date(k)
        if dt is None:
            raise invalid_value(collection, attribute, "stored set items that are ISO-8601 dates", k)
        return dt
    return date_key, date_key, date_value, date_value


def _set_codec(data_type: "DataType", collection: str, attribute: str) -> _Codec:
    items: "DataType" = data_type.items  # type: ignore[attr-defined]
    key, key_text, unkey, unserialize = _item_codec(items, collection, attribute)
    expected = _expected(data_type) + " (or an {item: bool} map)"
    is_string = data_type.items.type == "string"  # type: ignore[attr-defined]

    def encode_map(value: Mapping[Any, Any]) -> Dict[str, bool]:
        out: Dict[str, bool] = {}
        for k, flag in value.items():
            if flag is not True and flag is not False:
                raise invalid_value(collection, attribute, "an {item: bool} map", value)
            out[key_text(k) if isinstance(k, str) else key(k)] = flag
        return out

    def encode(value: Any) -> Dict[str, bool]:
        if isinstance(value, (set, frozenset, list, tuple)):
            return {key(v): True for v in value}
        if isinstance(value, Mapping):
            return encode_map(value)
        raise invalid_value(collection, attribute, expected, value)

    def patch(value: Any, current: Any) -> Dict[str, bool]:
        if isinstance(value, Mapping):
            return encode_map(value)
        new = encode(value)
        if isinstance(current, Mapping) and current:
            # Replace: every item present now and missing from the new set goes to false.
            out = {k: False for k, flag in current.items() if flag and k not in new}
            out.update(new)
            return out
        return new

    def decode(value: Any) -> Any:
        if type(value) is dict or isinstance(value, Mapping):
            if is_string:
                return {k for k, flag in value.items() if flag}
            return {unkey(k) for k, flag in value.items() if flag}
        if isinstance(value, list):  # the HTTP API's serialized form
            return {unserialize(v) for v in value}
        raise invalid_value(collection, attribute, "a stored set ({item: bool} map)", value)

    return _Codec(encode, patch, decode)


def _scalar_codec(data_type: "DataType", collection: str, attribute: str) -> _Codec:
    kind = data_type.type
    expected = _expected(data_type)

    if kind == "string":
        enum = getattr(data_type, "enum", None)
        allowed = frozenset(enum) if enum else None

        def enc_string(v: Any) -> Any:
            if type(v) is not str:
                if not isinstance(v, str):
                    raise invalid_value(collection, attribute, expected, v)
                v = str.__str__(v)
            if allowed is not None and v not in allowed:
                raise invalid_value(collection, attribute, expected, v)
            return v
        return _Codec(enc_string, None, None)

    if kind == "number":
        def enc_number(v: Any) -> Any:
            n = as_number(v)
            if n is None:
                raise invalid_value(collection, attribute, f"{expected} (finite, not bool)", v)
            return n
        return _Codec(enc_number, None, None)

    if kind == "boolean":
        def enc_bool(v: Any) -> bool:
            if v is True or v is False:
                return v
            raise invalid_value(collection, attribute, expected, v)
        return _Codec(enc_bool, None, None)

    if kind == "date":
        def enc_date(v: Any) -> str:
            iso = encode_date(v)
            if iso is None:
                raise invalid_value(collection, attribute, expected, v)
            return iso

        def dec_date(v: Any) -> Any:
            dt = decode_date(v)
            if dt is None:
                raise invalid_value(collection, attribute, "a stored ISO-8601 date string", v)
            return dt
        return _Codec(enc_date, None, dec_date)

    if kind == "json":
        return _Codec(lambda v: encode_plain(v, collection, attribute), None, None)

    raise invalid_value(collection, attribute, "a known attribute type", kind)  # pragma: no cover


def _default_maker(data_type: "DataType", codec: _Codec, collection: str,
                   attribute: str) -> Optional[Callable[[], Any]]:
    default = data_type.config.get("default")
    if default is None:
        return None
    if isinstance(default, Mapping) and "func" in default:
        func, args = default.get("func"), default.get("args")
        if func in ("nanoid", "uuid"):
            size = args[0] if isinstance(args, list) and args else 21
            return lambda: nanoid(size)
        makers: Dict[str, Callable[[], Any]] = {
            "now": now_iso, "uuidv4": uuid4, "uuidv7": uuid7, "Set.empty": dict}
        return makers[str(func)]
    if data_type.type == "date" and as_number(default) is not None:
        # JS accepts epoch milliseconds for a date constant.
        default = datetime.fromtimestamp(default / 1000, _UTC)
    try:
        wire = codec.encode(copy.deepcopy(default))
    except SchemaValidationError as e:
        raise schema_error(f"Invalid default for {attribute!r} in collection {collection!r}: {e.message}",
                           collection, attribute) from None
    if isinstance(wire, (dict, list)):
        return lambda: copy.deepcopy(wire)
    return lambda: wire


def compile_value(data_type: "DataType", collection: str, attribute: str) -> _Codec:
    """The codec of one attribute (records recursively), including its default maker."""
    if data_type.type == "record":
        record = RecordCodec(data_type, collection, attribute + ".")  # type: ignore[arg-type]
        default = None if data_type.allows_none else (lambda: record.encode_insert({}))
        return _Codec(record.encode_insert, record.encode_patch,
                      record.decode if record.decoders else None, default)
    codec = _set_codec(data_type, collection, attribute) if data_type.type == "set" \
        else _scalar_codec(data_type, collection, attribute)
    codec.default = _default_maker(data_type, codec, collection, attribute)
    return codec


# ----------------------------------------------------------------------------- records


class RecordCodec:
    """Encodes and decodes one record type (a collection's attributes, or a nested record)."""

    __slots__ = ("collection", "prefix", "codecs", "allows_none", "defaults", "required", "decoders",
                 "is_root", "_size")

    def __init__(self, record: "RecordType", collection: str, prefix: str = "",
                 is_root: bool = False) -> None:
        self.collection = collection
        self.prefix = prefix
        self.is_root = is_root
        self.codecs: Dict[str, _Codec] = {}
        self.allows_none: Dict[str, bool] = {}
        self.defaults: List[Tuple[str, Callable[[], Any]]] = []
        self.required: List[str] = []
        self.decoders: List[Tuple[str, Decoder]] = []
        for name, data_type in record.properties.items():
            codec = compile_value(data_type, collection, prefix + name)
            if is_root and name == "id" and codec.default is None:
                codec.default = nanoid  # an insert always gets an id, as in the JS client
            self.codecs[name] = codec
            self.allows_none[name] = data_type.allows_none
            if codec.default is not None:
                self.defaults.append((name, codec.default))
            elif not data_type.allows_none:
                self.required.append(name)
            if codec.decode is not None:
                self.decoders.append((name, codec.decode))
        self._size = len(self.codecs)

    # -- errors

    def _unknown(self, key: Any) -> SchemaValidationError:
        known = ", ".join(self.codecs)
        name = self.prefix + str(key)
        return schema_error(f"Unknown attribute {name!r} in collection {self.collection!r}; "
                            f"known attributes: {known}", self.collection, name)

    def _not_a_dict(self, value: Any) -> SchemaValidationError:
        if self.is_root:
            return schema_error(f"An entity of collection {self.collection!r} must be a dict, "
                                f"got {describe(value)}", self.collection, None)
        return invalid_value(self.collection, self.prefix[:-1], "a dict", value)

    def _none_not_allowed(self, key: str, action: str) -> SchemaValidationError:
        return schema_error(
            f"Invalid value for {self.prefix + key!r} in collection {self.collection!r}: got None, but the "
            f"attribute is required and cannot be {action} (declare it S.Optional(...) or nullable=True)",
            self.collection, self.prefix + key)

    # -- encoding

    def encode_insert(self, value: Any) -> Dict[str, Any]:
        """A whole new record: every given value checked, defaults filled, required ones present."""
        if type(value) is not dict and not isinstance(value, Mapping):
            raise self._not_a_dict(value)
        codecs = self.codecs
        out: Dict[str, Any] = {}
        for key, item in value.items():
            codec = codecs.get(key)
            if codec is None:
                raise self._unknown(key)
            if item is None:
                if not self.allows_none[key]:
                    raise self._none_not_allowed(key, "None")
                out[key] = None
            else:
                out[key] = codec.encode(item)
        if len(out) < self._size:
            for key, make in self.defaults:
                if key not in out:
                    out[key] = make()
            for key in self.required:
                if key not in out:
                    raise schema_error(f"Missing required attribute {self.prefix + key!r} in collection "
                                       f"{self.collection!r} (it has no default)",
                                       self.collection, self.prefix + key)
        return out

    def encode_patch(self, value: Any, current: Any = None) -> Dict[str, Any]:
        """An update: only the given keys; ``None`` removes an optional attribute; records merge;
        a Python set replaces the stored set when ``current`` (its encoded value) is known."""
        if not isinstance(value, Mapping):
            raise self._not_a_dict(value)
        if self.is_root and "id" in value:
            raise schema_error(f"Cannot change the 'id' of an entity in collection {self.collection!r}: "
                               f"ids are immutable (got {describe(value['id'])})", self.collection, "id")
        codecs = self.codecs
        cur = current if isinstance(current, Mapping) else None
        out: Dict[str, Any] = {}
        for key, item in value.items():
            codec = codecs.get(key)
            if codec is None:
                raise self._unknown(key)
            if item is None:
                if not self.allows_none[key]:
                    raise self._none_not_allowed(key, "removed")
                out[key] = None
            elif codec.patch is not None:
                out[key] = codec.patch(item, cur.get(key) if cur is not None else None)
            else:
                out[key] = codec.encode(item)
        return out

    # -- decoding

    def decode(self, value: Any) -> Any:
        """Python values for a stored record: a new dict (keys outside the schema are kept as they are)."""
        if type(value) is not dict and not isinstance(value, Mapping):
            if value is None:
                return None
            raise invalid_value(self.collection, self.prefix[:-1] or "<entity>",
                                "a stored record (dict)", value)
        out = dict(value)
        for key, decode in self.decoders:
            item = out.get(key)
            if item is not None:
                try:
                    out[key] = decode(item)
                except Exception as e:
                    # A stored value the schema does not allow (the server has no schema, or
                    # another one): the row shows it as stored, so one odd value never makes
                    # every read of the collection fail. Reported once per attribute.
                    _report_bad_value(self.collection, self.prefix + key, e)
        return out


#: (collection, attribute) pairs already reported by _report_bad_value.
_reported: Set[Tuple[str, str]] = set()


def _report_bad_value(collection: str, attribute: str, error: BaseException) -> None:
    if (collection, attribute) in _reported:
        return
    _reported.add((collection, attribute))
    logger.warning(
        "%s.%s holds a value the schema does not allow; rows show it as stored (%s)"
        " (reported once per attribute)", collection, attribute, redact(str(error), 200),
    )


def compile_collection(name: str, record: "RecordType") -> RecordCodec:
    """The top-level codec of collection ``name``."""
    return RecordCodec(record, name, "", is_root=True)
