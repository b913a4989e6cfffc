"""The one JSON shim: orjson when it is installed (the ``fast`` extra), the standard library
otherwise, with the same output either way: compact UTF-8, and datetimes, dates and dataclasses
handed to ``default`` (a ``TypeError`` without one) instead of each library's own rendering."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Optional, Union

try:  # orjson is optional: several times faster on the bulk paths (frames, sqlite rows)
    import orjson

    _orjson: Any = orjson  # Any: mypy must pass with and without orjson installed
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = ["dumps", "loads", "FAST"]

#: True when orjson is in use.
FAST = _orjson is not None

Default = Optional[Callable[[Any], Any]]


def _no_default(value: Any) -> Any:
    raise TypeError(f"value of type {type(value).__name__} is not JSON serializable: {value!r:.80}")


if _orjson is not None:
    _OPTS = _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS
    loads: Callable[[Union[str, bytes]], Any] = _orjson.loads

    def _dumps(obj: Any, default: Callable[[Any], Any]) -> bytes:
        data: bytes = _orjson.dumps(obj, default=default, option=_OPTS)
        return data

else:  # pragma: no cover - exercised only without orjson
    loads = json.loads
    _encoders: Dict[Callable[[Any], Any], json.JSONEncoder] = {}

    def _dumps(obj: Any, default: Callable[[Any], Any]) -> bytes:
        encoder = _encoders.get(default)
        if encoder is None:
            encoder = _encoders[default] = json.JSONEncoder(
                separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=default)
        return encoder.encode(obj).encode("utf-8")


def dumps(obj: Any, default: Default = None) -> bytes:
    """``obj`` as compact UTF-8 JSON.

        >>> dumps({"a": [1, "é"]})
        b'{"a":[1,"\\xc3\\xa9"]}'
    """
    return _dumps(obj, default or _no_default)
