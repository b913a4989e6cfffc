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
import math
import numbers
import re
import sys
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple

from ._ids import iso_from_datetime, nanoid, now_iso, uuid4, uuid7
from .errors import SchemaValidationError

if TYPE_CHECKING:
    from ._schema_types import DataType, RecordType

__all__ = [
    "RecordCodec",
    "compile_collection",
    "compile_value",
    "encode_date",
    "decode_date",
    "encode_plain",
    "js_number_str",
    "describe",
    "invalid_value",
]

_UTC = timezone.utc
_REPR_LIMIT = 80

Encoder = Callable[[Any], Any]
Patcher = Callable[[Any, Any], Any]
Decoder = Callable[[Any], Any]


# ----------------------------------------------------------------------------- errors


def describe(value: Any) -> str:
    """``repr(value)`` cut to a readable length, with its type name."""
    text = repr(value)
    if len(text) > _REPR_LIMIT:
        text = text[: _REPR_LIMIT - 3] + "..."
    return f"{text} ({type(value).__name__})"


def _error(message: str, collection: str, attribute: Optional[str]) -> SchemaValidationError:
    err = SchemaValidationError(message)
    # Plain attributes (not constructor arguments) so the shared error class stays as it is.
    err.collection = collection  # type: ignore[attr-defined]
    err.attribute = attribute  # type: ignore[attr-defined]
    return err


def invalid_value(collection: str, attribute: str, expected: str, value: Any, note: str = "") -> SchemaValidationError:
    """The error for a value that does not fit its attribute's type."""
    return _error(
        f"Invalid value for {attribute!r} in collection {collection!r}: expected {expected}, got {describe(value)}"
        + (f" ({note})" if note else ""),
        collection,
        attribute,
    )


# ----------------------------------------------------------------------------- dates

_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


def _parse_iso(text: str) -> Optional[datetime]:
    """An aware UTC datetime for an ISO-8601 date or date-time; no offset means UTC."""
    m = _ISO_RE.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, tz = m.groups()
    micro = int((frac + "000000")[:6]) if frac else 0
    try:
        dt = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                      micro, tzinfo=_UTC)
        if tz and tz not in ("Z", "z"):
            sign = -1 if tz[0] == "-" else 1
            digits = tz[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            dt = dt - sign * offset
    except (ValueError, OverflowError):
        return None
    return dt


def encode_date(value: Any) -> Optional[str]:
    """The wire string for a ``datetime``/``date``/ISO string, or ``None`` if it is none of them.

    Naive datetimes and ISO strings without an offset are taken to be UTC.
    """
    if isinstance(value, datetime):
        return iso_from_datetime(value)
    if isinstance(value, date):
        return value.isoformat() + "T00:00:00.000Z"
    if isinstance(value, str):
        dt = _parse_iso(value)
        if dt is not None:
            return iso_from_datetime(dt)
    return None


if sys.version_info >= (3, 11):
    _fromiso = datetime.fromisoformat

    def _fast_decode_date(text: str) -> datetime:
        return _fromiso(text)  # 3.11 reads the trailing Z itself
else:  # pragma: no cover - exercised on 3.9/3.10
    _fromiso = datetime.fromisoformat

    def _fast_decode_date(text: str) -> datetime:
        return _fromiso(text[:23]).replace(tzinfo=_UTC)


def decode_date(value: Any) -> Optional[datetime]:
    """An aware UTC ``datetime`` for a wire date string, or ``None`` if it is not one."""
    if type(value) is str:
        if len(value) == 24 and value[23] == "Z" and value[10] == "T":
            try:
                return _fast_decode_date(value)
            except ValueError:
                pass
        return _parse_iso(value)
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    return None


# ----------------------------------------------------------------------------- numbers


def js_number_str(value: float) -> str:
    """``value`` as JavaScript's ``String(number)`` prints it (set keys of number sets).

    >>> js_number_str(1.0), js_number_str(1e21), js_number_str(1e-7), js_number_str(0.1)
    ('1', '1e+21', '1e-7', '0.1')
    """
    if isinstance(value, int) and abs(value) < 10 ** 21:
        return str(value)
    value = float(value)
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    sign = "-" if value < 0 else ""
    # repr() is the shortest round-tripping form, as in JS; only the layout differs.
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    significant = (int_part + frac_part).lstrip("0")
    # value == 0.<significant> * 10**n
    n = len(significant) + (int(exp_text) if exp_text else 0) - len(frac_part)
    digits = significant.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    exp = n - 1
    body = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{body}e{'+' if exp >= 0 else '-'}{abs(exp)}"


def _as_number(value: Any) -> Any:
    """``value`` as a JSON number, or ``None`` if it is not a finite real number."""
    t = type(value)
    if t is int:
        return value
    if t is float:
        return value if value - value == 0.0 else None  # NaN and infinities fail this
    if t is bool or isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def _parse_number_key(key: str) -> Any:
    try:
        return int(key)
    except ValueError:
        return float(key)


# ----------------------------------------------------------------------------- plain JSON


def _plain_key(value: Any, collection: str, attribute: str) -> str:
    if isinstance(value, str):
        return str.__str__(value)
    if value is True or value is False:
        return "true" if value else "false"
    number = _as_number(value)
    if number is not None:
        return js_number_str(number)
    iso = encode_date(value) if isinstance(value, (datetime, date)) else None
    if iso is not None:
        return iso
    raise invalid_value(collection, attribute, "set items that are str, number, bool or datetime", value)


def encode_plain(value: Any, collection: str, attribute: str) -> Any:
    """``value`` as JSON, for ``json`` attributes and schemaless collections.

    ``datetime``/``date`` become ISO strings, tuples become lists, ``set``/``frozenset`` become
    ``{item: true}`` maps (Triplit's set form); anything else that is not JSON raises.
    """
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        if value - value == 0.0:
            return value
        raise invalid_value(collection, attribute, "a finite number (JSON has no NaN or infinity)", value)
    if t is dict or isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise invalid_value(collection, attribute, "an object with string keys", key)
            out[key] = encode_plain(item, collection, f"{attribute}.{key}")
        return out
    if t is list or t is tuple:
        return [encode_plain(item, collection, f"{attribute}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (datetime, date)):
        return encode_date(value)
    if isinstance(value, (set, frozenset)):
        return {_plain_key(item, collection, attribute): True for item in value}
    if isinstance(value, str):
        return str.__str__(value)
    number = _as_number(value)
    if number is not None:
        return number
    raise invalid_value(
        collection, attribute, "a JSON value (str, int, float, bool, None, dict, list), a datetime or a set", value)


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


def _item_codec(items: "DataType", collection: str, attribute: str) -> Tuple[Encoder, Encoder, Decoder, Decoder]:
    """For set items: value -> key, wire-key text -> normalized key, key -> value, serialized item -> value."""
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
            n = _as_number(v)
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
        return num_key, num_text, _parse_number_key, (lambda v: v)

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
    key, key_text, unkey, unserialize = _item_codec(data_type.items, collection, attribute)  # type: ignore[attr-defined]
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
        if isinstance(value, Mapping):
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

        def enc_string(v: Any) -> str:
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
            n = _as_number(v)
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


def _default_maker(data_type: "DataType", codec: _Codec, collection: str, attribute: str) -> Optional[Callable[[], Any]]:
    default = data_type.config.get("default")
    if default is None:
        return None
    if isinstance(default, Mapping) and "func" in default:
        func, args = default.get("func"), default.get("args")
        if func in ("nanoid", "uuid"):
            size = args[0] if isinstance(args, list) and args else 21
            return lambda: nanoid(size)
        return {"now": now_iso, "uuidv4": uuid4, "uuidv7": uuid7, "Set.empty": dict}[func]
    if data_type.type == "date" and _as_number(default) is not None:
        # JS accepts epoch milliseconds for a date constant.
        default = datetime.fromtimestamp(default / 1000, _UTC)
    try:
        wire = codec.encode(copy.deepcopy(default))
    except SchemaValidationError as e:
        raise _error(f"Invalid default for {attribute!r} in collection {collection!r}: {e.message}",
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

    def __init__(self, record: "RecordType", collection: str, prefix: str = "", is_root: bool = False) -> None:
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
        return _error(f"Unknown attribute {self.prefix + str(key)!r} in collection {self.collection!r}; "
                      f"known attributes: {known}", self.collection, self.prefix + str(key))

    def _not_a_dict(self, value: Any) -> SchemaValidationError:
        if self.is_root:
            return _error(f"An entity of collection {self.collection!r} must be a dict, got {describe(value)}",
                          self.collection, None)
        return invalid_value(self.collection, self.prefix[:-1], "a dict", value)

    def _none_not_allowed(self, key: str, action: str) -> SchemaValidationError:
        return _error(
            f"Invalid value for {self.prefix + key!r} in collection {self.collection!r}: got None, but the "
            f"attribute is required and cannot be {action} (declare it S.Optional(...) or nullable=True)",
            self.collection, self.prefix + key)

    # -- encoding

    def encode_insert(self, value: Any) -> Dict[str, Any]:
        """A whole new record: every given value checked, defaults filled, required ones present."""
        if not isinstance(value, Mapping):
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
                    raise _error(f"Missing required attribute {self.prefix + key!r} in collection "
                                 f"{self.collection!r} (it has no default)", self.collection, self.prefix + key)
        return out

    def encode_patch(self, value: Any, current: Any = None) -> Dict[str, Any]:
        """An update: only the given keys; ``None`` removes an optional attribute; records merge;
        a Python set replaces the stored set when ``current`` (its encoded value) is known."""
        if not isinstance(value, Mapping):
            raise self._not_a_dict(value)
        if self.is_root and "id" in value:
            raise _error(f"Cannot change the 'id' of an entity in collection {self.collection!r}: "
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
        if not isinstance(value, Mapping):
            if value is None:
                return None
            raise invalid_value(self.collection, self.prefix[:-1] or "<entity>", "a stored record (dict)", value)
        out = dict(value)
        for key, decode in self.decoders:
            item = out.get(key)
            if item is not None:
                out[key] = decode(item)
        return out


def compile_collection(name: str, record: "RecordType") -> RecordCodec:
    """The top-level codec of collection ``name``."""
    return RecordCodec(record, name, "", is_root=True)
