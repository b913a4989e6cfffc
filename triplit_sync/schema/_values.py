"""Value helpers shared by the codecs: error messages, JS-compatible dates and numbers, plain JSON.

Dates on the wire are what JavaScript's ``Date.toISOString()`` prints (``"2024-01-01T00:00:00.000Z"``);
numbers used as set keys are what ``String(number)`` prints. Matching both lets Python and JS
clients write identical documents.
"""

from __future__ import annotations

import math
import numbers
import re
import sys
from collections.abc import Mapping  # the abc itself: isinstance with typing.Mapping is slow
from datetime import date, datetime, timedelta, timezone
from typing import Any, Optional

from .._util.jsnumber import js_number_str
from ..errors import SchemaValidationError
from ._ids import iso_from_datetime

__all__ = [
    "describe",
    "schema_error",
    "invalid_value",
    "encode_date",
    "decode_date",
    "js_number_str",
    "as_number",
    "parse_number_key",
    "encode_plain",
]

_UTC = timezone.utc
_REPR_LIMIT = 80

# ----------------------------------------------------------------------------- errors


def describe(value: Any) -> str:
    """``repr(value)`` cut to a readable length, with its type name."""
    text = repr(value)
    if len(text) > _REPR_LIMIT:
        text = text[: _REPR_LIMIT - 3] + "..."
    return f"{text} ({type(value).__name__})"


def schema_error(message: str, collection: str, attribute: Optional[str]) -> SchemaValidationError:
    err = SchemaValidationError(message)
    # Plain attributes (not constructor arguments) so the shared error class stays as it is.
    err.collection = collection
    err.attribute = attribute
    return err


def invalid_value(collection: str, attribute: str, expected: str, value: Any) -> SchemaValidationError:
    """The error for a value that does not fit its attribute's type."""
    return schema_error(
        f"Invalid value for {attribute!r} in collection {collection!r}: "
        f"expected {expected}, got {describe(value)}",
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


def as_number(value: Any) -> Any:
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


def parse_number_key(key: str) -> Any:
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
    number = as_number(value)
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
    number = as_number(value)
    if number is not None:
        return number
    raise invalid_value(collection, attribute,
                        "a JSON value (str, int, float, bool, None, dict, list), a datetime or a set", value)
