"""Query plans: the server's execution strategy, reproduced step by step.

The server does not evaluate a prepared query naively. Its planner (``query-compiler`` and
``query-engine`` in ``@triplit/db`` 1.1.x) rewrites relational parts into *views*, and the
results depend on that rewrite. To return exactly what ``POST /fetch`` returns, this module
builds the same plan and runs it with Python closures. Server behaviours that follow from the
plan (all checked against a live 1.1.8 server by ``tests/test_query_differential.py``):

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
import heapq
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import InvalidQueryError
from ._values import MISSING, JSSet, NULL_KEY, get_path, order_key, safe_compare, u16
from .filters import Factory, Predicate, and_all, bind_resolved, compile_static_filter, is_variable
from .prepare import variable_components

Doc = Dict[str, Any]
_INDEXABLE_OPS = ("=", "<", "<=", ">", ">=", "!=")


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
    return _is_statement(f) and is_variable(f[2]) and f[1] in _INDEXABLE_OPS


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
            for f in static_f:
                if f[1] not in _INDEXABLE_OPS:
                    raise InvalidQueryError(f"The server's query cache cannot evaluate operator {f[1]!r} here")
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


def _include_level(q: Mapping[str, Any]) -> int:
    level = 0
    for inc in (q.get("include") or {}).values():
        level = max(level, _include_level(inc["subquery"]) + 1)
    return level


def _after_predicate(after: Sequence[Any], order: Sequence[Any]) -> Predicate:
    cursor, inclusive = after
    if len(cursor) != len(order):
        raise InvalidQueryError("The order and after cursor are not compatible")
    specs = [(clause[0].split("."), order_key(cursor[i]), clause[1] == "ASC") for i, clause in enumerate(order)]

    def passed(d: Any) -> bool:
        for parts, ck, asc in specs:
            v = get_path(d, parts)
            ek = NULL_KEY if v is MISSING or v is None else order_key(v)
            if ek == ck:
                continue
            return (ek > ck) == asc
        return inclusive

    return passed


def compile_plan(prepared: Mapping[str, Any]) -> Tuple[Plan, Dict[str, Plan]]:
    """Compile a prepared query into its root plan and its views."""
    ex = _Extractor()
    root_q = ex.extract(copy.deepcopy(dict(prepared)))
    root = Plan(root_q)
    views = {vid: Plan(vq) for vid, vq in ex.views.items()}
    return root, views


# --- execution --------------------------------------------------------------------------------------


class Row:
    """A result entity with its subquery results (includes and relational order values)."""

    __slots__ = ("data", "sub")

    def __init__(self, data: Doc) -> None:
        self.data = data
        self.sub: Dict[str, Any] = {}


def row_data(r: Any) -> Doc:
    return r.data if type(r) is Row else r


def flatten(r: Any) -> Any:
    if type(r) is not Row:
        return r
    if not r.sub:
        return r.data
    out = dict(r.data)
    for k, v in r.sub.items():
        out[k] = [flatten(x) for x in v] if isinstance(v, list) else flatten(v)
    return out


def _id_key(d: Doc) -> str:
    i = d.get("id")
    return u16(i) if type(i) is str else u16(str(i))


class Run:
    """One evaluation: the data source, the compiled views and the views computed so far."""

    def __init__(self, source: Any, views: Dict[str, Plan]) -> None:
        self.source = source
        self.views = views
        self.prepared: Dict[str, List[Any]] = {}
        self.scans: Dict[str, List[Doc]] = {}

    def scan(self, collection: str) -> List[Doc]:
        docs = self.scans.get(collection)
        if docs is None:
            docs = self.scans[collection] = [d for d in self.source.scan(collection) if d is not None]
        return docs

    def view(self, vid: str, stack: List[Any]) -> List[Any]:
        res = self.prepared.get(vid)
        if res is None:
            plan = self.views.get(vid)
            if plan is None:
                raise InvalidQueryError(f"View {vid} not found")
            res = self.prepared[vid] = self.execute(plan, stack)
        return res

    def resolve(self, var: str, stack: List[Any]) -> Any:
        comps = variable_components(var)
        scope, path = comps[0], [str(c) for c in comps[1:]]
        if isinstance(scope, int):
            if len(stack) < scope:
                raise InvalidQueryError(
                    f"Variable {var!r} refers to a parent query that does not exist (nesting depth {len(stack)})"
                )
            if scope == 0:
                return MISSING
            return get_path(stack[len(stack) - scope], path)
        if scope is None and path and path[0].startswith("view_"):
            view = self.view(path[0][len("view_"):], stack)
            rest = path[1:]
            return [get_path(flatten(x), rest) for x in view]
        return MISSING

    def execute(self, plan: Plan, stack: List[Any]) -> List[Any]:
        resolve = lambda var: self.resolve(var, stack)  # noqa: E731
        if plan.view_id is not None:
            results = list(self.view(plan.view_id, stack))
            for prop, op, val in plan.view_filters:
                bound = bind_resolved(resolve(val)) if is_variable(val) else val
                results = _resolve_from_view(results, prop, op, bound)
            if plan.exists:
                results = [r for r in results if self._passes_exists(plan, stack, r)]
        else:
            if plan.has_id_filter:
                cands = self._lookup(plan, resolve)
                base_sorted = True
            else:
                cands = self.scan(plan.collection)
                base_sorted = False
            preds = [fac(resolve) for fac in plan.static]
            if plan.after_pred is not None:
                preds.append(plan.after_pred)
            if preds:
                pred = and_all(preds)
                cands = [d for d in cands if pred(d)]
            elif not base_sorted:
                cands = list(cands)
            if not base_sorted and (not plan.order or plan.exists or (plan.limit and not plan.order)):
                cands.sort(key=_id_key)
                base_sorted = True
            limit_early = plan.limit and not plan.order
            if plan.exists:
                kept = []
                for d in cands:
                    if self._passes_exists(plan, stack, d):
                        kept.append(d)
                        if limit_early and len(kept) >= plan.limit:
                            break
                cands = kept
            elif limit_early:
                cands = cands[: int(plan.limit)]
            results = cands
            if plan.rows:
                results = [Row(d) for d in results]
            if plan.order:
                results = self._sort(plan, results, stack, base_sorted)
        if isinstance(plan.limit, (int, float)) and not isinstance(plan.limit, bool):
            results = results[: max(int(plan.limit), 0)]
        for alias, sub, one in plan.includes:
            for r in results:
                sub_res = self.execute(sub, stack + [flatten(r)])
                r.sub[alias] = (sub_res[0] if sub_res else None) if one else sub_res
        return results

    def _passes_exists(self, plan: Plan, stack: List[Any], cand: Any) -> bool:
        inner = stack + [flatten(cand)]
        for sub in plan.exists:
            if not self.execute(sub, inner):
                return False
        return True

    def _lookup(self, plan: Plan, resolve: Callable[[str], Any]) -> List[Doc]:
        v = plan.id_value
        if is_variable(v):
            ids = _ids_from_resolved(resolve(v))
        elif isinstance(v, str):
            ids = [v]
        elif isinstance(v, JSSet):
            ids = list(v.values)
        elif v is None or v is MISSING:
            ids = []
        else:
            raise InvalidQueryError(f"An id filter needs a string or a list of strings, got {v!r}")
        out, seen = [], set()
        get = self.source.get
        for i in ids:
            if type(i) is not str or i in seen:
                continue
            seen.add(i)
            d = get(plan.collection, i)
            if d is not None:
                out.append(d)
        return out

    def _sort(self, plan: Plan, rows: List[Any], stack: List[Any], base_sorted: bool) -> List[Any]:
        keys: List[Tuple[List[Any], bool]] = []
        for path, desc, sub, level in plan.order:
            if sub is not None:
                alias = path[0]
                for r in rows:
                    res = self.execute(sub, stack + [flatten(r)])
                    r.sub[alias] = res[0] if res else None
                keys.append(([_rel_order_key(r, path, level) for r in rows], desc))
            else:
                parts = path
                if len(parts) == 1:
                    p0 = parts[0]
                    if type(rows[0] if rows else None) is Row:
                        ks = [order_key(r.data.get(p0)) for r in rows]
                    else:
                        ks = [order_key(d.get(p0)) for d in rows]
                else:
                    ks = [order_key(_none_if_missing(get_path(row_data(r), parts))) for r in rows]
                keys.append((ks, desc))
        idx = list(range(len(rows)))
        limit = plan.limit
        if isinstance(limit, (int, float)) and not isinstance(limit, bool) and 0 < limit < len(rows) // 2:
            k1, d1 = keys[0]
            getk = k1.__getitem__
            top = (heapq.nlargest if d1 else heapq.nsmallest)(int(limit), idx, key=getk)
            t = k1[top[-1]]
            idx = [i for i in idx if (k1[i] >= t if d1 else k1[i] <= t)]
        if not base_sorted:
            ids = [_id_key(row_data(r)) for r in rows]
            idx.sort(key=ids.__getitem__)
        for ks, desc in reversed(keys):
            idx.sort(key=ks.__getitem__, reverse=desc)
        return [rows[i] for i in idx]


def _none_if_missing(v: Any) -> Any:
    return None if v is MISSING else v


def _rel_order_key(r: Row, path: List[str], level: int) -> Tuple[Any, ...]:
    cur: Any = r
    for k in path[: level + 1]:
        if type(cur) is not Row:
            raise InvalidQueryError(
                "Cannot order by a relation path when some entity has no related entity "
                "(the server fails on this query too)"
            )
        cur = cur.sub.get(k, MISSING)
        if cur is MISSING:
            return NULL_KEY
    if cur is None:
        raise InvalidQueryError(
            "Cannot order by a relation path when some entity has no related entity (the server fails on this query too)"
        )
    v = row_data(cur).get(path[-1]) if isinstance(row_data(cur), dict) else None
    return order_key(v)


def _ids_from_resolved(v: Any) -> List[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        out: List[str] = []
        for x in v:
            out.extend(_ids_from_resolved(x))
        return out
    if isinstance(v, JSSet):
        return _ids_from_resolved(list(v.values))
    if isinstance(v, dict):
        return [k for k, alive in v.items() if alive is True]
    return []


def _js_slice(arr: List[Any], start: int, end: Optional[int] = None) -> List[Any]:
    n = len(arr)
    s = start + n if start < 0 else start
    s = min(max(s, 0), n)
    if end is None:
        e = n
    else:
        e = end + n if end < 0 else end
        e = min(max(e, 0), n)
    return arr[s:e] if e > s else []


def _bsearch(arr: List[Any], target: Any, prop: str, first: bool) -> int:
    lo, hi, result = 0, len(arr) - 1, -1
    while lo <= hi:
        mid = (lo + hi) // 2
        d = row_data(arr[mid])
        mv = d.get(prop, MISSING) if isinstance(d, dict) else MISSING
        c = safe_compare(mv, target)
        if c == 0:
            result = mid
            if first:
                hi = mid - 1
            else:
                lo = mid + 1
        elif c < 0:
            lo = mid + 1
        else:
            hi = mid - 1
    return result


def _resolve_from_view(results: List[Any], prop: str, op: str, val: Any) -> List[Any]:
    start = _bsearch(results, val, prop, True)
    end = _bsearch(results, val, prop, False)
    if op == "!=":
        return _js_slice(results, 0, start + 1) + _js_slice(results, end)
    return _js_slice(results, start, end + 1)
