"""Query plans: the server's execution strategy, reproduced step by step.

The server does not evaluate a prepared query naively. Its planner (``query-compiler`` and
``query-engine`` in ``@triplit/db`` 1.1.x) rewrites relational parts into *views*, and the
results depend on that rewrite. To return exactly what ``POST /fetch`` returns, this module
builds the same plan and runs it with Python closures. Server behaviours that follow from the
plan (all checked against a live 1.1.8 server by ``tests/query/test_query_differential.py``):

* ``exists`` with at most one filter on the parent (``$1``) and no ``$2``+ reference is
  *inverted*: the subquery runs once as a view and the parent is filtered with
  ``[parent_attr, "in", <the view's values>]``. So the operator of that filter is ignored
  (``["score", ">", "$1.x"]`` means equality), a parent whose attribute is null never
  matches, and an ``exists`` with **no** parent filter is dropped: it is always true, even when
  the subquery matches nothing.
* The first top-level ``["id", "=" | "in", ...]`` filter selects candidates by id, in the
  filter's order (so ``id in [b, a]`` without ``order`` returns b before a); otherwise
  candidates come in id order. A later ``sort`` is stable, so ties keep that order.
* Includes (and ``exists`` that cannot be inverted) whose where has a filter comparing with a
  variable through ``= != < <= > >=`` are answered from a sorted view by binary search on the
  (non-dotted) attribute: ``< <= > >=`` then mean equality, ``!=`` keeps odd slices, a missing
  attribute differs from null, ``after`` is ignored, and ``exists`` filters inside such an
  include are dropped.
* ``limit`` without ``order`` takes the first matches in candidate order; ``limit: 0`` gives [].
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, cast

from ..errors import InvalidQueryError
from ._semantics import MISSING, NULL_KEY, get_path, order_key
from .filters import Factory, Predicate, compile_static_filter, is_variable
from .prepare import variable_components

Doc = Dict[str, Any]
INDEXABLE_OPS = ("=", "<", "<=", ">", ">=", "!=")


# --- shapes -----------------------------------------------------------------------------------


def _is_statement(f: Any) -> bool:
    return isinstance(f, list) and len(f) == 3 and isinstance(f[0], str) and isinstance(f[1], str)


def _is_group(f: Any) -> bool:
    return isinstance(f, dict) and "mod" in f


def _is_exists(f: Any) -> bool:
    return isinstance(f, dict) and isinstance(f.get("exists"), dict) and "collectionName" in f["exists"]


def _is_static(f: Any) -> bool:
    if f is True or f is False or _is_statement(f):
        return True
    if _is_group(f):
        return all(_is_static(x) for x in f["filters"])
    if isinstance(f, dict) and "exists" in f:
        return False
    return True


def _is_indexable(f: Any) -> bool:
    return _is_statement(f) and is_variable(f[2]) and f[1] in INDEXABLE_OPS


def _scope(var: str) -> Any:
    return variable_components(var)[0]


def _flat(where: Sequence[Any]) -> List[Any]:
    out: List[Any] = []
    for f in where:
        if _is_group(f):
            out.extend(_flat(f["filters"]))
        else:
            out.append(f)
    return out


def _has_higher_refs(where: Sequence[Any]) -> bool:
    for f in _flat(where):
        if _is_statement(f) and is_variable(f[2]):
            level = _scope(f[2])
            if isinstance(level, int) and level > 1:
                return True
        elif _is_exists(f):
            if _has_higher_refs(f["exists"].get("where") or []):
                return True
    return False


# --- view extraction (the server's relational planner) -----------------------------------------


class _Extractor:
    def __init__(self) -> None:
        self.next_id = 0
        self.views: Dict[str, Dict[str, Any]] = {}

    def gen(self) -> str:
        vid = str(self.next_id)
        self.next_id += 1
        return vid

    def extract(self, q: Dict[str, Any]) -> Dict[str, Any]:
        if q.get("where"):
            q["where"] = self.where(q["where"])
        if q.get("include"):
            for alias, inc in list(q["include"].items()):
                q["include"][alias] = {**inc, "subquery": self.subquery(inc["subquery"])}
        if q.get("order"):
            for i, clause in enumerate(q["order"]):
                if len(clause) == 3 and clause[2] is not None:
                    q["order"][i] = [clause[0], clause[1], {**clause[2], "subquery": self.subquery(clause[2]["subquery"])}]
        return q

    def subquery(self, sub: Dict[str, Any]) -> Dict[str, Any]:
        if _can_cache(sub) and not sub.get("include"):
            vid = self.gen()
            view, var_filters, _unused = _query_to_view(sub)
            self.views[vid] = self.extract(view)
            # Filters that are neither indexable nor static (exists) are dropped here.
            return {**sub, "collectionName": "$view_" + vid, "where": var_filters}
        return self.extract(sub)

    def where(self, where: List[Any]) -> List[Any]:
        out: List[Any] = []
        for f in where:
            if _is_exists(f):
                sub = f["exists"]
                has_gp = bool(sub.get("where")) and _has_higher_refs(sub["where"])
                var_filters = [
                    x for x in (sub.get("where") or [])
                    if _is_statement(x) and is_variable(x[2]) and _scope(x[2]) == 1
                ]
                if not has_gp and len(var_filters) < 2:
                    vid = self.gen()
                    root = self.extract(sub)
                    if sub.get("where") is not None:
                        root["where"] = [x for x in sub["where"] if not any(x is v for v in var_filters)]
                    self.views[vid] = root
                    for x in var_filters:
                        path = ".".join(str(c) for c in variable_components(x[2])[1:])
                        out.append([path, "in", "$view_" + vid + "." + x[0]])
                elif _can_cache(sub):
                    vid = self.gen()
                    view, var_filters2, unused = _query_to_view(sub)
                    self.views[vid] = self.extract(view)
                    remaining = self.where(unused)
                    out.append({"exists": {**sub, "collectionName": "$view_" + vid, "where": var_filters2 + remaining}})
                else:
                    out.append(f)
            elif _is_group(f):
                out.append({**f, "filters": self.where(f["filters"])})
            else:
                out.append(f)
        return out


def _can_cache(q: Mapping[str, Any]) -> bool:
    where = q.get("where")
    if not where:
        return True
    return any(_is_indexable(f) for f in where)


def _query_to_view(q: Mapping[str, Any]) -> Tuple[Dict[str, Any], List[Any], List[Any]]:
    var_f, static_f, unused = [], [], []
    for f in q.get("where") or []:
        if _is_indexable(f):
            var_f.append(f)
        elif _is_static(f):
            static_f.append(f)
        else:
            unused.append(f)
    view = {
        "collectionName": q["collectionName"],
        "where": static_f,
        "order": [[f[0], "ASC"] for f in var_f] + list(q.get("order") or []),
        "limit": None if var_f else q.get("limit"),
        "include": q.get("include"),
    }
    return view, var_f, unused


# --- compiled plans -------------------------------------------------------------------------------


class Plan:
    """One query level, compiled: candidate selection, filters, order, limit, includes."""

    def __init__(self, q: Mapping[str, Any]) -> None:
        self.collection: str = q["collectionName"]
        self.view_id: Optional[str] = None
        self.view_filters: List[List[Any]] = []
        self.id_value: Any = None
        self.has_id_filter = False
        self.static: List[Factory] = []
        self.exists: List["Plan"] = []
        self.limit = q.get("limit")
        order = q.get("order") or []
        self.order: List[Tuple[List[str], bool, Optional["Plan"], int]] = []
        self.after_pred: Optional[Predicate] = None
        self.includes: List[Tuple[str, "Plan", bool]] = []
        self.rows = False  # whether rows need a place for subquery results

        where = q.get("where") or []
        static_f, sub_f = [], []
        for f in where:
            if _is_static(f):
                static_f.append(f)
            elif _is_exists(f):
                sub_f.append(f)
            else:
                raise InvalidQueryError(f"Could not compile query: unsupported filter in where clause: {f!r}")
        id_index = next(
            (i for i, f in enumerate(where) if _is_statement(f) and f[0] == "id" and f[1] in ("=", "in")), -1
        )
        if self.collection.startswith("$view_"):
            self.view_id = self.collection[len("$view_"):]
            if not all(_is_statement(f) for f in static_f):
                raise InvalidQueryError("Could not compile query: filters on a cached view must be plain statements")
            self.view_filters = static_f
            static_f = []
        else:
            if id_index >= 0:
                self.has_id_filter = True
                self.id_value = where[id_index][2]
                # The server removes the id filter by its index in `where` from the list of
                # static filters; with an exists before it, that index hits another filter.
                if id_index < len(static_f):
                    del static_f[id_index]
            self.static = [compile_static_filter(f) for f in static_f]
            after = q.get("after")
            if after:
                self.after_pred = _after_predicate(after, order)
        self.exists = [Plan(f["exists"]) for f in sub_f]
        if self.view_id is None:
            for i, clause in enumerate(order):
                parts = clause[0].split(".")
                sub = clause[2] if len(clause) == 3 else None
                if sub is not None:
                    level = _include_level(sub["subquery"])
                    alias = "_order_" + str(i)
                    path = [alias] + parts[1:]
                    self.order.append((path, clause[1] == "DESC", Plan(sub["subquery"]), level))
                    self.rows = True
                else:
                    self.order.append((parts, clause[1] == "DESC", None, 0))
        for alias, inc in (q.get("include") or {}).items():
            self.includes.append((alias, Plan(inc["subquery"]), inc["cardinality"] == "one"))
            self.rows = True
        #: The attribute an order index can answer this level from (see Run.execute), or None:
        #: the first order clause's, or ``id`` without an order (candidates come in id order).
        self.index_attr: Optional[str] = None
        self.index_desc = False
        limit = self.limit
        if (self.view_id is None and not self.has_id_filter and not self.exists
                and self.after_pred is None and type(limit) is int and limit > 0
                and all(sub is None for _, _, sub, _ in self.order) and all(_total(f) for f in static_f)):
            if not self.order:
                self.index_attr = "id"
            elif len(self.order[0][0]) == 1:
                self.index_attr, self.index_desc = self.order[0][0][0], self.order[0][1]
        #: (attribute, value) of a top-level ``=`` filter an index can select candidates by.
        self.eq_index: Optional[Tuple[str, Any]] = None
        if (self.view_id is None and not self.has_id_filter and not self.exists
                and all(_total(f) for f in static_f)):
            for f in static_f:
                if (_is_statement(f) and f[1] == "=" and "." not in f[0] and f[0] != "id"
                        and type(f[2]) in (str, int, float) and not is_variable(f[2])):
                    self.eq_index = (f[0], f[2])
                    break


# Operators whose test never raises, whatever a document holds: a query answered from an index
# reads only some documents, so it must not skip one the server's full scan would fail on.
_TOTAL_OPS = frozenset(["=", "!=", "<", "<=", ">", ">=", "in", "nin", "isDefined"])


def _total(f: Any) -> bool:
    if f is True or f is False:
        return True
    if _is_group(f):
        return f["mod"] in ("and", "or") and all(_total(x) for x in f.get("filters", []))
    if _is_statement(f):
        op, fv = f[1], f[2]
        if op in ("like", "nlike"):
            return type(fv) is str and not is_variable(fv)
        return op in _TOTAL_OPS
    return False


def _include_level(q: Mapping[str, Any]) -> int:
    level = 0
    for inc in (q.get("include") or {}).values():
        level = max(level, _include_level(inc["subquery"]) + 1)
    return level


def _after_predicate(after: Sequence[Any], order: Sequence[Any]) -> Predicate:
    cursor, inclusive = after
    if len(cursor) != len(order):
        raise InvalidQueryError("The order and after cursor are not compatible")
    # A null cursor value of an optional attribute is `undefined` on the server, which fails
    # when it compares with it; that happens only when the earlier keys tie.
    specs = [
        (clause[0].split("."), None if cursor[i] is MISSING else order_key(cursor[i]), clause[1] == "ASC")
        for i, clause in enumerate(order)
    ]

    def passed(d: Any) -> bool:
        for parts, ck, asc in specs:
            if ck is None:
                raise InvalidQueryError(
                    "An after cursor with null for an optional attribute cannot be evaluated (the server fails too)"
                )
            v = get_path(d, parts)
            ek = NULL_KEY if v is MISSING or v is None else order_key(v)
            if ek == ck:
                continue
            return cast(bool, (ek > ck) == asc)
        return cast(bool, inclusive)

    return passed


def compile_plan(prepared: Mapping[str, Any]) -> Tuple[Plan, Dict[str, Plan]]:
    """Compile a prepared query into its root plan and its views."""
    ex = _Extractor()
    root_q = ex.extract(copy.deepcopy(dict(prepared)))
    root = Plan(root_q)
    views = {vid: Plan(vq) for vid, vq in ex.views.items()}
    return root, views
