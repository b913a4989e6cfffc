"""JSON for the HTTP API: bodies out, responses in, and the SuperJSON ``changes`` envelope.

Python values the server cannot read as JSON are turned into the forms its HTTP routes accept:
``datetime``/``date`` become ISO-8601 strings in UTC with milliseconds (what JavaScript's
``toISOString`` prints; naive datetimes are taken to be UTC, as the schema codec does), sets
become arrays (the HTTP routes read an array as a set). Anything else unknown is refused.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Any, Callable, Dict, Iterable, List, Mapping, Union

try:  # orjson is optional (the "fast" extra); the stdlib json is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only without orjson
    _orjson = None

__all__ = ["dumps", "loads", "iso_utc", "encode_changes"]

_UTC = timezone.utc


def iso_utc(value: Union[datetime, date]) -> str:
    """``2024-01-02T03:04:05.678Z`` for a datetime (naive = UTC) or ``...T00:00:00.000Z`` for a date."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.isoformat() + "T00:00:00.000Z"


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return iso_utc(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, tuple):  # orjson hands tuple subclasses (named tuples) to default
        return list(value)
    raise TypeError(f"a value of type {type(value).__name__} cannot be sent as JSON: {value!r:.80}")


if _orjson is not None:
    # Passthrough makes orjson hand datetimes to _default, so the wire format does not depend
    # on which JSON library is installed.
    _OPTS = _orjson.OPT_PASSTHROUGH_DATETIME

    def _dumps(obj: Any) -> bytes:
        return _orjson.dumps(obj, default=_default, option=_OPTS)

    loads: Callable[[Union[str, bytes]], Any] = _orjson.loads
else:  # pragma: no cover - exercised only without orjson
    _encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default)

    def _dumps(obj: Any) -> bytes:
        return _encoder.encode(obj).encode("utf-8")

    loads = json.loads


def dumps(obj: Any, what: str) -> bytes:
    """UTF-8 JSON for ``obj``; a value that has no JSON form raises ``TypeError`` naming ``what``."""
    try:
        return _dumps(obj)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} cannot be sent as JSON: {exc}") from None


def _escape_path_segment(key: str) -> str:
    # SuperJSON escapes backslashes and dots inside meta path segments.
    if "\\" in key or "." in key:
        return key.replace("\\", "\\\\").replace(".", "\\.")
    return key


def encode_changes(changes: Mapping[str, Mapping[str, Any]]) -> Dict[str, Any]:
    """The SuperJSON ``{json, meta}`` envelope of in-memory changes (``_types.Changes``).

    >>> encode_changes({"todos": {"sets": {"t1": {"id": "t1"}}, "deletes": {"t2"}}})
    {'json': {'todos': {'sets': [['t1', {'id': 't1'}]], 'deletes': ['t2']}}, 'meta': {'values': {'todos.sets': ['map'], 'todos.deletes': ['set']}, 'v': 1}}
    """
    if not isinstance(changes, Mapping):
        raise TypeError(f"changes must map collection names to {{'sets', 'deletes'}}, not {type(changes).__name__}")
    body: Dict[str, Any] = {}
    values: Dict[str, List[str]] = {}
    for coll, c in changes.items():
        if not isinstance(coll, str) or not coll:
            raise ValueError(f"changes: a collection name must be a non-empty string, got {coll!r}")
        if not isinstance(c, Mapping) or not set(c) <= {"sets", "deletes"}:
            raise TypeError(f"changes[{coll!r}] must be a mapping with 'sets' and 'deletes', got {c!r:.80}")
        sets = c.get("sets") or {}
        deletes: Iterable[Any] = c.get("deletes") or ()
        if not isinstance(sets, Mapping):
            raise TypeError(f"changes[{coll!r}]['sets'] must map entity ids to documents, not {type(sets).__name__}")
        if isinstance(deletes, (str, bytes, Mapping)) or not isinstance(deletes, Iterable):
            raise TypeError(f"changes[{coll!r}]['deletes'] must be a set of entity ids, not {type(deletes).__name__}")
        delete_list = list(deletes)
        for i in delete_list:
            if not isinstance(i, str):
                raise TypeError(f"changes[{coll!r}]['deletes'] holds a non-string id {i!r}")
        for i, doc in sets.items():
            if not isinstance(i, str):
                raise TypeError(f"changes[{coll!r}]['sets'] holds a non-string id {i!r}")
            if not isinstance(doc, Mapping):
                raise TypeError(f"changes[{coll!r}]['sets'][{i!r}] must be a document (a mapping), got {doc!r:.80}")
        body[coll] = {"sets": [[i, doc] for i, doc in sets.items()], "deletes": sorted(delete_list)}
        key = _escape_path_segment(coll)
        values[key + ".sets"] = ["map"]
        values[key + ".deletes"] = ["set"]
    return {"json": body, "meta": {"values": values, "v": 1}}
