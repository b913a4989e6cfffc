"""The stable object hash Triplit uses for query ids and schema hashes (PROTOCOL.md §5.2, §8).

FNV-1a (32 bit) over the UTF-16 code units of a canonical text: objects as ``{k:v,...}`` with keys
sorted, arrays as ``[a,b]``, everything else as JavaScript's ``String()`` would print it. Matching
the JS client's ids lets both kinds of client agree on a query's identity.
"""

from __future__ import annotations

from typing import Any

from .jsnumber import js_number_str

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


def js_string(value: Any) -> str:
    """Render ``value`` the way the JS hash serializer does (strings unquoted, words for constants)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{js_string(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(js_string(v) for v in value) + "]"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return js_number_str(value)
    return str(value)


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over the UTF-16 code units of ``text``."""
    h = _FNV_OFFSET
    data = text.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h = ((h ^ (data[i] | (data[i + 1] << 8))) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def hash_object(value: Any) -> int:
    """The unsigned 32-bit hash of ``value``'s canonical text."""
    return fnv1a32(js_string(value))
