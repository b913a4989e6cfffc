"""Global variables (``$global.<name>`` in a query's filters), bound into the query itself.

The official client keeps its global variables in its local database only: CONNECT_QUERY
carries the query as written and the server resolves ``$global.x`` against its own globals,
which are empty, so a query using one answers differently locally (the value) and remotely
(undefined). Here the values are written into the query before it is evaluated or sent: both
sides see the same literal, and the query's id (hence its server view, its checkpoint and its
resume state) is that of the query with those values, so a query run again with other values
never resumes from the first one's results. As in the official client, a query takes the values
current when it is fetched or subscribed.

Only the query's own filters are bound (``where``, ``exists`` subqueries, ``include``
subqueries, relational ``order`` subqueries); a ``$global`` inside a schema relation stays a
reference, undefined on both sides. A name with no value stays a reference too: undefined on
both sides, as the server keeps it. A bare ``$global`` is not this scope (it means
``$1.global``, a relational variable).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping

from ._semantics import MISSING, get_path, to_filter_value

__all__ = ["bind_global_variables", "normalize_global_variables"]

_PREFIX = "$global."


def normalize_global_variables(variables: Any) -> Dict[str, Any]:
    """``variables`` as the JSON values they stand for (datetimes as ISO strings, sets as lists),
    copied: later changes to the caller's objects change nothing. Raises TypeError naming a bad
    value."""
    if variables is None:
        return {}
    if not isinstance(variables, Mapping):
        raise TypeError(f"global variables must be a dict of names to values, not {type(variables).__name__}")
    out: Dict[str, Any] = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not name or "." in name:
            raise TypeError(f"a global variable's name must be a non-empty string without '.', not {name!r}")
        converted = to_filter_value(value)
        try:
            json.dumps(converted)
        except (TypeError, ValueError):
            raise TypeError(f"global variable {name!r} is not a JSON value (or a datetime or set): "
                            f"{type(value).__name__}") from None
        out[name] = converted
    return out


def bind_global_variables(query: Mapping[str, Any], variables: Mapping[str, Any]) -> Dict[str, Any]:
    """``query`` with every ``$global.<path>`` filter value that has a value in ``variables``
    replaced by it (``variables`` as :func:`normalize_global_variables` made them). Parts
    without one are shared, not copied."""
    if not variables:
        return dict(query)
    return dict(_query(query, variables))


def _query(query: Mapping[str, Any], variables: Mapping[str, Any]) -> Mapping[str, Any]:
    out: Dict[str, Any] = {}
    where = query.get("where")
    if isinstance(where, list):
        bound = _filters(where, variables)
        if bound is not where:
            out["where"] = bound
    include = query.get("include")
    if isinstance(include, Mapping):
        bound_include = {alias: _inclusion(inc, variables) for alias, inc in include.items()}
        if any(bound_include[a] is not include[a] for a in include):
            out["include"] = bound_include
    order = query.get("order")
    if isinstance(order, list):
        bound_order = [_order_entry(entry, variables) for entry in order]
        if any(b is not e for b, e in zip(bound_order, order)):
            out["order"] = bound_order
    return {**query, **out} if out else query


def _filters(filters: List[Any], variables: Mapping[str, Any]) -> List[Any]:
    bound = [_filter(f, variables) for f in filters]
    return filters if all(b is f for b, f in zip(bound, filters)) else bound


def _filter(f: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(f, list) and len(f) == 3 and isinstance(f[2], str) and f[2].startswith(_PREFIX):
        value = get_path(variables, f[2][len(_PREFIX):].split("."))
        return f if value is MISSING else [f[0], f[1], value]
    if isinstance(f, Mapping):
        if isinstance(f.get("filters"), list):
            filters = _filters(f["filters"], variables)
            return f if filters is f["filters"] else {**f, "filters": filters}
        if isinstance(f.get("exists"), Mapping):
            sub = _query(f["exists"], variables)
            return f if sub is f["exists"] else {**f, "exists": sub}
    return f


def _inclusion(inc: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(inc, Mapping) and isinstance(inc.get("subquery"), Mapping):
        sub = _query(inc["subquery"], variables)
        return inc if sub is inc["subquery"] else {**inc, "subquery": sub}
    if isinstance(inc, Mapping):
        return _query(inc, variables)  # an extended relation: its own where, include, order
    return inc


def _order_entry(entry: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(entry, list) and len(entry) >= 3 and isinstance(entry[2], Mapping) \
            and isinstance(entry[2].get("subquery"), Mapping):
        sub = _query(entry[2]["subquery"], variables)
        return entry if sub is entry[2]["subquery"] else [entry[0], entry[1], {**entry[2], "subquery": sub}, *entry[3:]]
    return entry
