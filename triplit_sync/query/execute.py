"""Running a compiled plan against a data source, step by step as the server's query engine does.

See :mod:`triplit_sync.query.plan` for the behaviours that follow from the server's plan.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

from ..errors import InvalidQueryError
from ._semantics import MISSING, NULL_KEY, JSSet, get_path, order_key, safe_compare, u16
from .filters import and_all, bind_resolved, is_variable
from .plan import INDEXABLE_OPS, Plan
from .prepare import variable_components

Doc = Dict[str, Any]


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


def _sort_by_id(docs: List[Doc]) -> List[Doc]:
    """``docs`` in the server's id order (JS string order), sorted in place where possible."""
    keys = [d.get("id") for d in docs]
    if all(type(k) is str for k in keys) and "".join(cast(List[str], keys)).isascii():
        # ASCII ids order the same in Python and JS: no key function per row.
        order = sorted(range(len(keys)), key=cast(List[str], keys).__getitem__)
        return [docs[i] for i in order]
    docs.sort(key=_id_key)
    return docs


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
        resolve: Callable[[Any], Any] = lambda var: self.resolve(var, stack)  # noqa: E731
        if plan.view_id is not None:
            results = list(self.view(plan.view_id, stack))
            for prop, op, val in plan.view_filters:
                bound = bind_resolved(resolve(val)) if is_variable(val) else val
                results = _resolve_from_view(results, prop, op, bound)
            if plan.exists:
                results = [r for r in results if self._passes_exists(plan, stack, r)]
        else:
            preds = [fac(resolve) for fac in plan.static]
            if plan.after_pred is not None:
                preds.append(plan.after_pred)
            indexed = self._from_index(plan, preds)
            equal = None if indexed is not None or plan.eq_index is None else self._by_equality(plan)
            if indexed is not None:
                cands, base_sorted = indexed, False  # already filtered
            elif equal is not None:
                cands, base_sorted = equal, False
                if preds:
                    pred = and_all(preds)
                    cands = [d for d in cands if pred(d)]
            else:
                if plan.has_id_filter:
                    cands = self._lookup(plan, resolve)
                    base_sorted = True
                else:
                    cands = self.scan(plan.collection)
                    base_sorted = False
                if preds:
                    pred = and_all(preds)
                    cands = [d for d in cands if pred(d)]
                elif not base_sorted:
                    cands = list(cands)
            if not base_sorted and not plan.order:
                if plan.limit and not plan.exists and plan.limit < len(cands):
                    cands = heapq.nsmallest(int(plan.limit), cands, key=_id_key)
                else:
                    cands = _sort_by_id(cands)
                base_sorted = True
            elif not base_sorted and plan.exists:
                cands = _sort_by_id(cands)
                base_sorted = True
            # The limit itself when it applies before sorting, else None (typed for the checks below).
            limit_early = plan.limit if plan.limit and not plan.order else None
            if plan.exists:
                kept = []
                for d in cands:
                    if self._passes_exists(plan, stack, d):
                        kept.append(d)
                        if limit_early is not None and len(kept) >= limit_early:
                            break
                cands = kept
            elif limit_early is not None:
                cands = cands[: int(limit_early)]
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

    def _from_index(self, plan: Plan, preds: List[Any]) -> Optional[List[Doc]]:
        """The candidates of an ``order ... limit`` level from the source's order index: the
        matches that can be among the first ``limit`` (ties included; ``_sort`` orders them), or
        None to scan. Same results as the scan, without reading the rest of the collection."""
        if plan.index_attr is None:
            return None
        ordered = getattr(self.source, "ordered_matches", None)
        if ordered is None:
            return None
        pred = and_all(preds) if preds else None
        limit = cast(int, plan.limit)  # an int > 0 whenever index_attr is set
        found: Optional[List[Doc]] = ordered(plan.collection, plan.index_attr, plan.index_desc, pred, limit)
        return found

    def _by_equality(self, plan: Plan) -> Optional[List[Doc]]:
        """Candidates of a level with an ``[attr, "=", value]`` filter from the source's index
        of ``attr`` (a superset of the matches, filtered as a scan's), or None to scan."""
        lookup = getattr(self.source, "equal_matches", None)
        if lookup is None or plan.eq_index is None:
            return None
        found: Optional[List[Doc]] = lookup(plan.collection, *plan.eq_index)
        return found

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
                ks = [_rel_order_key(r, path, level) for r in rows]
                _check_null_relations(ks, keys)
                keys.append((ks, desc))
            else:
                keys.append((_plain_keys(rows, path), desc))
        idx = list(range(len(rows)))
        limit = plan.limit
        if isinstance(limit, (int, float)) and not isinstance(limit, bool) and 0 < limit < len(rows) // 2:
            k1, d1 = keys[0]
            getk = k1.__getitem__
            top = (heapq.nlargest if d1 else heapq.nsmallest)(int(limit), idx, key=getk)
            t = k1[top[-1]]
            # Everything strictly better than the limit-th key, plus all its ties.
            if d1:
                idx = [i for i, k in enumerate(k1) if k >= t]
            else:
                idx = [i for i, k in enumerate(k1) if k <= t]
        if not base_sorted:
            idx.sort(key=lambda i: _id_key(row_data(rows[i])))
        for ks, desc in reversed(keys):
            idx.sort(key=ks.__getitem__, reverse=desc)
        return [rows[i] for i in idx]


def _plain_keys(rows: List[Any], parts: List[str]) -> List[Any]:
    if len(parts) == 1:
        p0 = parts[0]
        if rows and type(rows[0]) is Row:
            vals = [r.data.get(p0) for r in rows]
        else:
            vals = [d.get(p0) for d in rows]
    else:
        vals = [_none_if_missing(get_path(row_data(r), parts)) for r in rows]
    types = set(map(type, vals))
    # Values of one plain type compare natively; order_key only where types mix.
    if types == {str} and all(map(str.isascii, vals)):
        return vals
    if types and types <= {int, float}:
        return vals
    return [order_key(v) for v in vals]


def _none_if_missing(v: Any) -> Any:
    return None if v is MISSING else v


def _rel_order_key(r: Row, path: List[str], level: int) -> Any:
    """The sort key of a relational order value, or None where the server would read into null."""
    cur: Any = r
    for k in path[: level + 1]:
        if type(cur) is not Row:
            return None
        cur = cur.sub.get(k, MISSING)
        if cur is MISSING:
            return NULL_KEY
    if cur is None:
        return None
    d = row_data(cur)
    return order_key(d.get(path[-1]) if isinstance(d, dict) else None)


def _check_null_relations(ks: List[Any], earlier: List[Tuple[List[Any], bool]]) -> None:
    # The server's comparator reads this key only for rows that tie on the earlier keys, and
    # fails on a row without a related entity; a sort compares every row with a tying neighbour.
    nulls = [i for i, k in enumerate(ks) if k is None]
    if not nulls:
        return
    prefix = [tuple(e[0][i] for e in earlier) for i in range(len(ks))]
    counts: Dict[Any, int] = {}
    for p in prefix:
        counts[p] = counts.get(p, 0) + 1
    if any(counts[prefix[i]] > 1 for i in nulls):
        raise InvalidQueryError(
            "Cannot order by a relation path when an entity has no related entity (the server fails on this query too)"
        )
    for i in nulls:
        ks[i] = NULL_KEY


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
    if op not in INDEXABLE_OPS:
        raise InvalidQueryError(f"The server's query cache cannot evaluate operator {op!r} here")
    start = _bsearch(results, val, prop, True)
    end = _bsearch(results, val, prop, False)
    if op == "!=":
        return _js_slice(results, 0, start + 1) + _js_slice(results, end)
    return _js_slice(results, start, end + 1)
