"""A CollectionQuery as it is sent in CONNECT_QUERY: the same query, kept apart from the others.

@triplit/server 1.1.8 shares one live view (IVM subscription) between all subscriptions whose
prepared queries hash alike, across every connection. Its hash of a filter value is
``JSON.stringify(value)``, and ``in`` / ``nin`` values are JavaScript Sets by then, which all
stringify to ``{}``: every ``["id", "in", [...]]`` query on a collection shares the view of
whichever came first. The server then answers a later one with the first one's results and
never sends it the changes of its own entities (found here: an ``id in [x]`` subscription kept
an old value of ``x`` for good).

So a query (and each of its subqueries: ``exists`` filters, includes) holding a list value gets
one more filter that hashes to the query's own id and is true for every entity,
``["id", "!=", "triplit-sync:query:<query id>"]`` (an always-true group such as
``{"mod": "or", "filters": [true, ...]}`` would be simplified away before hashing; ids with this
prefix are reserved). Results are unchanged and the view is the query's own. Queries without
list values are sent as they are. Not covered: an ``in`` on a relation path
(``["todo.tag", "in", [...]]``), which the server turns into a subquery of its own making.
"""

from __future__ import annotations

from typing import Any, Dict

from .._util.types import QueryJSON

__all__ = ["wire_query"]

_MARKER = "triplit-sync:query:"


def _has_list(value: Any) -> bool:
    """Whether a filter statement ``[path, op, [values...]]`` appears anywhere in ``value``."""
    if isinstance(value, list):
        if len(value) == 3 and isinstance(value[0], str) and isinstance(value[1], str) \
                and isinstance(value[2], list):
            return True
        return any(_has_list(v) for v in value)
    if isinstance(value, dict):
        return any(_has_list(v) for v in value.values())
    return False


def wire_query(query: QueryJSON, query_id: str) -> QueryJSON:
    """``query`` as a CONNECT_QUERY's ``params`` (see the module docstring): every (sub)query
    holding a list value gets its own marker; the rest is shared, not copied."""
    return _mark(query, query_id)


def _mark(query: Dict[str, Any], key: str) -> Dict[str, Any]:
    where = query.get("where")
    include = query.get("include")
    if not _has_list(where) and not _has_list(include):
        return query
    out: Dict[str, Any] = dict(query)
    if _has_list(where):
        out["where"] = [_mark_filter(f, f"{key}.w{i}") for i, f in enumerate(where or [])] + [
            ["id", "!=", _MARKER + key]]
    if isinstance(include, dict) and _has_list(include):
        out["include"] = {alias: _mark_inclusion(inc, f"{key}.i.{alias}") for alias, inc in include.items()}
    return out


def _mark_filter(f: Any, key: str) -> Any:
    if isinstance(f, dict) and isinstance(f.get("exists"), dict):
        return {**f, "exists": _mark(f["exists"], key)}
    if isinstance(f, dict) and isinstance(f.get("filters"), list):
        return {**f, "filters": [_mark_filter(g, f"{key}.{i}") for i, g in enumerate(f["filters"])]}
    return f


def _mark_inclusion(inc: Any, key: str) -> Any:
    if isinstance(inc, dict) and isinstance(inc.get("subquery"), dict):
        return {**inc, "subquery": _mark(inc["subquery"], key)}
    if isinstance(inc, dict):
        return _mark(inc, key)  # an extended relation: its own where and include
    return inc
