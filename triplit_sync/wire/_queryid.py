"""Query ids equal to the JS client's (PROTOCOL.md §5.2), tested against the recorded traces."""

from __future__ import annotations

from typing import Any, Mapping

from .._util.hash import hash_object

__all__ = ["QUERY_ID_KEYS", "query_id"]

#: The CollectionQuery keys the JS client hashes (``hashQuery``), in no particular order.
QUERY_ID_KEYS = ("after", "collectionName", "select", "include", "limit", "order", "vars", "where")


class _Undefined:
    def __str__(self) -> str:
        return "undefined"

    __repr__ = __str__


_UNDEFINED = _Undefined()


def query_id(query: Mapping[str, Any], *, builder: bool = True) -> str:
    """The query id the JS client would use for ``query`` (a CollectionQuery as sent in
    ``CONNECT_QUERY.params``): unsigned 32-bit FNV-1a of its canonical text, as a decimal string.

    With ``builder=True`` (default) the id equals what ``@triplit/client`` 1.0.50 sends: its query
    builder always carries all eight keys of :data:`QUERY_ID_KEYS`, unset ones as JS
    ``undefined``, so missing (or ``None``) keys hash as the word ``undefined``. The wire omits
    them (JSON drops ``undefined``) and adds a random ``traceId``, which is not hashed. This is
    verified against every id recorded in the traces. ``builder=False`` hashes only the keys
    present, as ``hashQuery`` does for a hand-written query object (PROTOCOL.md §5.2 example).

        >>> query_id({"collectionName": "todos"})
        '2294105723'
        >>> query_id({"collectionName": "todos", "where": [["done", "=", False]]}, builder=False)
        '3583458536'
    """
    if not isinstance(query, Mapping) or not isinstance(query.get("collectionName"), str):
        raise ValueError(f"query_id needs a query with a collectionName, got {query!r:.120}")
    if builder:
        canonical = {k: _UNDEFINED if query.get(k) is None else query[k] for k in QUERY_ID_KEYS}
    else:
        canonical = {k: query[k] for k in QUERY_ID_KEYS if k in query}
    return str(hash_object(canonical))
