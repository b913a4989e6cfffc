"""Run a CollectionQuery against local documents, with the server's semantics.

``evaluate(query, source)`` returns what the server's ``POST /fetch`` returns for the same
query and data (with a service token, i.e. without permission filters): the same entities in
the same order, ``select`` applied, includes nested under their alias keys (cardinality
``one`` -> a document or None). Values stay in the encoded (wire) form the source holds:
dates as ISO strings, sets as ``{item: true|false}`` maps.

A source is anything with ``scan(collection)`` (iterable of documents, any order) and
``get(collection, id)`` (a document or None)::

    class Source:
        def __init__(self, docs): self.docs = docs            # {collection: {id: doc}}
        def scan(self, collection): return self.docs.get(collection, {}).values()
        def get(self, collection, id): return self.docs.get(collection, {}).get(id)

    evaluate({"collectionName": "todos", "where": [["completed", "=", False]],
              "order": [["created_at", "DESC"]], "limit": 20}, Source(docs))

Queries are compiled once (preparation as on the server, then a plan of Python closures) and
cached by their JSON, schema and variables.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Protocol, Set, Tuple, cast

from ..errors import InvalidQueryError
from ._semantics import MISSING, get_path, set_path
from .execute import Row, Run, row_data
from .filters import and_all
from .plan import Plan, compile_plan
from .prepare import prepare_query

Doc = Dict[str, Any]

__all__ = [
    "Source",
    "CompiledQuery",
    "compile_query",
    "evaluate",
    "evaluate_with_dependencies",
    "result_dependencies",
]


class Source(Protocol):
    """What :func:`evaluate` reads from."""

    def scan(self, collection: str) -> Iterable[Doc]: ...

    def get(self, collection: str, entity_id: str) -> Optional[Doc]: ...


def _as_json(query: Any) -> Dict[str, Any]:
    to_json = getattr(query, "to_json", None)
    if callable(to_json):
        return cast(Dict[str, Any], to_json())
    if isinstance(query, Mapping):
        return dict(query)
    raise InvalidQueryError(f"Expected a query (a Query or a CollectionQuery dict), got {type(query).__name__}")


class CompiledQuery:
    """A query prepared and compiled once; :meth:`run` evaluates it against a source."""

    __slots__ = ("query", "prepared", "plan", "views")

    def __init__(self, query: Mapping[str, Any], prepared: Dict[str, Any], plan: Plan, views: Dict[str, Plan]) -> None:
        self.query = query
        self.prepared = prepared
        self.plan = plan
        self.views = views

    def run(self, source: Source) -> List[Doc]:
        """The results, shaped like ``POST /fetch`` (encoded values)."""
        rows = Run(source, self.views).execute(self.plan, [])
        return _shape_many(rows, self.prepared)

    def run_with_dependencies(self, source: Source, *, copy: bool = True) -> Tuple[List[Doc], Dict[str, Set[str]]]:
        """The results and every ``{collection: {ids}}`` they contain, includes at every depth.

        ``copy=False`` hands out the source's own documents where no ``select`` or ``include``
        reshapes them (the sync engine's hot path): the caller must not mutate them.
        """
        rows = Run(source, self.views).execute(self.plan, [])
        deps: Dict[str, Set[str]] = {}
        _collect(rows, self.prepared, deps)
        return _shape_many(rows, self.prepared, copy), deps


    def unaffected(self, source: Source, deps: Mapping[str, Set[str]], changed: Mapping[str, Set[str]]) -> bool:
        """True when changing exactly the entities in ``changed`` cannot change the results of
        this query, whose last results held ``deps`` (False: evaluate it again).

        Only for one-level queries (no include, exists or relational order): their results are
        the first matches in the query's order, so an entity that is not among them and does not
        match now (as ``source`` holds it after the change) leaves them as they are.
        """
        plan = self.plan
        if self.views or plan.view_id is not None or plan.exists or plan.includes or plan.rows:
            return False
        ids = changed.get(plan.collection)
        if not ids:
            return True
        held = deps.get(plan.collection)
        if held and not ids.isdisjoint(held):
            return False
        run = Run(source, self.views)
        try:
            preds = [fac(lambda var: run.resolve(var, [])) for fac in plan.static]
            if plan.after_pred is not None:
                preds.append(plan.after_pred)
            pred = and_all(preds)
            get = source.get
            for eid in ids:
                doc = get(plan.collection, eid)
                if doc is not None and pred(doc):
                    return False
        except Exception:  # an evaluation that fails: let the full run report it
            return False
        return True


_CACHE_SIZE = 512
_cache: "OrderedDict[Tuple[str, int, str], Tuple[Any, CompiledQuery]]" = OrderedDict()
_cache_lock = threading.Lock()


def _key_json(x: Any) -> str:
    return json.dumps(x, sort_keys=True, separators=(",", ":"), default=repr)


def compile_query(
    query: Any, *, schema: Optional[Mapping[str, Any]] = None, variables: Optional[Mapping[str, Any]] = None
) -> CompiledQuery:
    """Prepare and compile ``query`` (cached by its JSON, the schema object and the variables).

    Raises :class:`~triplit_sync.errors.InvalidQueryError` for a query the server would reject.
    """
    qj = _as_json(query)
    key = (_key_json(qj), id(schema), _key_json(variables) if variables else "")
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] is schema:
            _cache.move_to_end(key)
            return hit[1]
    prepared = prepare_query(qj, schema, variables)
    plan, views = compile_plan(prepared)
    compiled = CompiledQuery(qj, prepared, plan, views)
    with _cache_lock:
        _cache[key] = (schema, compiled)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def evaluate(
    query: Any,
    source: Source,
    *,
    schema: Optional[Mapping[str, Any]] = None,
    variables: Optional[Mapping[str, Any]] = None,
) -> List[Doc]:
    """Evaluate ``query`` (a Query or a CollectionQuery dict) against ``source``.

    ``schema`` is the server's JSON schema (``{"collections": ...}``); without it the query is
    evaluated schemaless, as a schemaless server would. ``variables`` gives the static
    variables: ``{"$global": {...}, "$session": {...}}`` (``$token`` = ``$session``; the keys
    may also be written without ``$``). The query's ``vars`` are ``$query``.

        >>> evaluate({"collectionName": "todos", "where": [["done", "=", False]]}, source)
        [{'id': 't1', 'done': False, ...}]
    """
    return compile_query(query, schema=schema, variables=variables).run(source)


def evaluate_with_dependencies(
    query: Any,
    source: Source,
    *,
    schema: Optional[Mapping[str, Any]] = None,
    variables: Optional[Mapping[str, Any]] = None,
) -> Tuple[List[Doc], Dict[str, Set[str]]]:
    """Like :func:`evaluate`, plus ``{collection: {ids}}`` of every entity in the result.

    That is the result entities and their included entities at every depth, whatever
    ``select`` keeps: the ids a resumed subscription may send as ``state.entityIds``
    (entities that only made an ``exists`` filter true are not listed; listing fewer ids is
    always safe).
    """
    return compile_query(query, schema=schema, variables=variables).run_with_dependencies(source)


def result_dependencies(
    query: Any, results: List[Doc], *, schema: Optional[Mapping[str, Any]] = None
) -> Dict[str, Set[str]]:
    """``{collection: {ids}}`` of the entities in ``results`` of ``query``, includes at every depth.

    Results without an ``id`` (a ``select`` without ``"id"``) are skipped; use
    :func:`evaluate_with_dependencies` to get ids whatever the select.
    """
    prepared = compile_query(query, schema=schema).prepared
    deps: Dict[str, Set[str]] = {}
    _collect_shaped(results, prepared, deps)
    return deps


# --- shaping -------------------------------------------------------------------------------------


def _shape_many(rows: List[Any], q: Mapping[str, Any], copy: bool = True) -> List[Doc]:
    if not q.get("select") and not q.get("include"):
        if not copy:
            # Stores never change a document in place: an unchanged row stays the same object
            # between runs, which makes comparing results cheap.
            return [row_data(r) for r in rows]
        return [dict(row_data(r)) for r in rows]
    return [_shape_one(r, q) for r in rows]


def _shape_one(r: Any, q: Mapping[str, Any]) -> Doc:
    data = row_data(r)
    select = q.get("select")
    if select:
        out: Doc = {}
        for key in select:
            parts = key.split(".")
            set_path(out, parts, get_path(data, parts))
    else:
        out = dict(data)
    include = q.get("include")
    if include and type(r) is Row:
        for alias, inc in include.items():
            if alias not in r.sub:
                continue
            sub = r.sub[alias]
            if inc["cardinality"] == "one":
                out[alias] = None if sub is None else _shape_one(sub, inc["subquery"])
            else:
                out[alias] = _shape_many(sub, inc["subquery"])
    return out


def _collect(rows: Any, q: Mapping[str, Any], deps: Dict[str, Set[str]]) -> None:
    coll = q["collectionName"]
    ids = deps.setdefault(coll, set())
    include = q.get("include") or {}
    if not include:
        found = [row_data(r).get("id") for r in rows]
        ids.update(i for i in found if type(i) is str)
        return
    for r in rows:
        d = row_data(r)
        i = d.get("id") if isinstance(d, dict) else None
        if isinstance(i, str):
            ids.add(i)
        if include and type(r) is Row:
            for alias, inc in include.items():
                sub = r.sub.get(alias, MISSING)
                if sub is MISSING or sub is None:
                    continue
                _collect(sub if isinstance(sub, list) else [sub], inc["subquery"], deps)


def _collect_shaped(results: Any, q: Mapping[str, Any], deps: Dict[str, Set[str]]) -> None:
    coll = q["collectionName"]
    ids = deps.setdefault(coll, set())
    include = q.get("include") or {}
    for d in results:
        if not isinstance(d, dict):
            continue
        i = d.get("id")
        if isinstance(i, str):
            ids.add(i)
        for alias, inc in include.items():
            sub = d.get(alias)
            if sub is None:
                continue
            _collect_shaped(sub if isinstance(sub, list) else [sub], inc["subquery"], deps)
