"""A fluent, immutable query builder that produces the server's CollectionQuery JSON.

    from triplit_sync.query import Query, or_, exists

    q = (Query("todos")
         .where("completed", "=", False)
         .where(or_(["owner", "=", "alice"], ["owner", "=", "$session.sub"]))
         .where(exists("comments", where=[["likes", ">", 3]]))
         .order("created_at", "DESC")
         .limit(20)
         .include("owner"))
    q.to_json()   # {"collectionName": "todos", "where": [...], "order": [["created_at", "DESC"]], ...}

Every method returns a new Query. Filter values may be Python values: datetimes become ISO
strings, sets and tuples become lists. With ``schema=`` (the server's JSON schema) every call
checks collections, attributes (dotted record paths and relation paths) and operators, and
raises :class:`~triplit_sync.errors.InvalidQueryError` naming the bad value; unknown operators
raise even without a schema.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union, cast

from ..errors import InvalidQueryError
from ._semantics import to_filter_value
from .filters import OPERATORS, SET_PREFIX
from .prepare import prepare_query

__all__ = ["Query", "and_", "or_", "exists", "validate", "QueryLike"]

QueryLike = Union["Query", Mapping[str, Any]]

_KEYS = ("collectionName", "where", "order", "limit", "after", "select", "include", "vars")


def _query_json(q: Any, what: str = "query") -> Dict[str, Any]:
    if isinstance(q, Query):
        return q.to_json()
    if isinstance(q, Mapping):
        if "collectionName" not in q:
            raise InvalidQueryError(f"A {what} needs a 'collectionName', got {dict(q)!r}")
        return copy.deepcopy(dict(q))
    raise InvalidQueryError(f"Expected a Query or a CollectionQuery dict as {what}, got {q!r}")


def _filter(f: Any) -> Any:
    """Normalize one filter (statement, group, exists, boolean) and check its operators."""
    if f is True or f is False:
        return f
    if isinstance(f, Query):
        raise InvalidQueryError(f"A Query is not a filter; wrap it in exists(...): {f!r}")
    if isinstance(f, (list, tuple)):
        if len(f) != 3 or not isinstance(f[0], str) or not isinstance(f[1], str):
            raise InvalidQueryError(f"A filter statement is [attribute, operator, value], got {list(f)!r}")
        path, op, value = f
        if op.startswith(SET_PREFIX):
            raise InvalidQueryError(
                f"Operator {op!r}: write {op[len(SET_PREFIX):]!r}; the server adds the SET_ prefix itself"
            )
        if op not in OPERATORS:
            raise InvalidQueryError(f"Unknown operator {op!r} in filter on {path!r}; use one of {sorted(OPERATORS)}")
        if not path:
            raise InvalidQueryError(f"Empty attribute in filter {list(f)!r}")
        if op in ("like", "nlike") and value is not None and not isinstance(value, str):
            raise InvalidQueryError(f"'{op}' on {path!r} needs a string pattern, got {value!r}")
        return [path, op, to_filter_value(value)]
    if isinstance(f, Mapping):
        if "mod" in f:
            mod = f["mod"]
            if mod not in ("and", "or"):
                raise InvalidQueryError(f"Invalid filter group mod {mod!r} (use 'and' or 'or')")
            return {"mod": mod, "filters": [_filter(x) for x in f.get("filters") or []]}
        if "exists" in f:
            ex = f["exists"]
            if isinstance(ex, Query):
                ex = ex.to_json()
            if not isinstance(ex, Mapping) or not ("_extends" in ex or "collectionName" in ex):
                raise InvalidQueryError(f"exists needs a relation ('_extends') or a subquery ('collectionName'): {ex!r}")
            ex = dict(ex)
            if ex.get("where") is not None:
                ex["where"] = [_filter(x) for x in ex["where"]]
            return {"exists": ex}
    raise InvalidQueryError(f"Not a filter: {f!r}")


def and_(*filters: Any) -> Dict[str, Any]:
    """A group that holds when every filter holds: ``and_(["a", "=", 1], ["b", "<", 2])``."""
    return {"mod": "and", "filters": [_filter(f) for f in _flatten_args(filters)]}


def or_(*filters: Any) -> Dict[str, Any]:
    """A group that holds when any filter holds: ``or_(["owner", "=", "a"], ["owner", "=", "b"])``."""
    return {"mod": "or", "filters": [_filter(f) for f in _flatten_args(filters)]}


def _flatten_args(filters: Sequence[Any]) -> List[Any]:
    # or_([f1, f2]) as well as or_(f1, f2)
    if len(filters) == 1 and isinstance(filters[0], list) and filters[0] and not isinstance(filters[0][0], str):
        return list(filters[0])
    return list(filters)


def exists(relation_or_query: Union[str, QueryLike], *, where: Optional[Iterable[Any]] = None) -> Dict[str, Any]:
    """An exists filter on a schema relation or on a raw subquery.

        exists("comments", where=[["likes", ">", 3]])         # relation (needs a schema)
        exists(Query("notes").where("todo_id", "=", "$1.id"))  # subquery; $1 is the parent entity
    """
    if isinstance(relation_or_query, str):
        ex: Dict[str, Any] = {"_extends": relation_or_query}
        if where is not None:
            ex["where"] = [_filter(f) for f in where]
        return {"exists": ex}
    sub = _query_json(relation_or_query, "exists subquery")
    if where is not None:
        sub["where"] = list(sub.get("where") or []) + [_filter(f) for f in where]
    return cast(Dict[str, Any], _filter({"exists": sub}))


def validate(query: QueryLike, schema: Optional[Mapping[str, Any]] = None) -> None:
    """Raise InvalidQueryError if the server would reject ``query`` (with ``schema``: names, types, operators)."""
    qj = _query_json(query)
    for f in qj.get("where") or []:
        _filter(f)
    prepare_query(qj, schema)


class Query:
    """An immutable CollectionQuery; see the module docstring."""

    __slots__ = ("_q", "_schema")

    def __init__(self, collection: str, *, schema: Optional[Mapping[str, Any]] = None) -> None:
        if not isinstance(collection, str) or not collection:
            raise InvalidQueryError(f"A collection name must be a non-empty string, got {collection!r}")
        self._q: Dict[str, Any] = {"collectionName": collection}
        self._schema = schema
        if schema is not None:
            prepare_query(self._q, schema)

    # -- construction helpers
    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, schema: Optional[Mapping[str, Any]] = None) -> "Query":
        """A Query from CollectionQuery JSON (unknown keys are dropped, everything is checked)."""
        qj = _query_json(data)
        q = cls(qj["collectionName"], schema=schema)
        new = {k: qj[k] for k in _KEYS if k in qj and qj[k] is not None}
        if "where" in new:
            new["where"] = [_filter(f) for f in new["where"]]
        q = q._with(new)
        if schema is not None:
            prepare_query(q._q, schema)
        return q

    def _with(self, changes: Mapping[str, Any]) -> "Query":
        q = Query.__new__(Query)
        q._q = {**self._q, **changes}
        q._schema = self._schema
        return q

    def _check(self, partial: Mapping[str, Any]) -> None:
        if self._schema is not None:
            prepare_query({"collectionName": self._q["collectionName"], **partial}, self._schema)

    # -- the fluent API
    @property
    def collection(self) -> str:
        return cast(str, self._q["collectionName"])

    def where(self, *args: Any) -> "Query":
        """Add filters (all must hold).

            .where("completed", "=", False)
            .where(["a", "=", 1], ["b", "<", 2])
            .where(or_(...)) / .where(exists(...)) / .where(True)
        """
        if len(args) == 3 and isinstance(args[0], str) and isinstance(args[1], str):
            filters = [_filter(list(args))]
        elif not args:
            raise InvalidQueryError("where() needs a filter: where('attr', 'op', value) or where([attr, op, value], ...)")
        else:
            filters = [_filter(f) for f in args]
        self._check({"where": filters})
        return self._with({"where": list(self._q.get("where") or []) + filters})

    def id(self, entity_id: str) -> "Query":
        """Only the entity with this id (``where("id", "=", entity_id)``)."""
        if not isinstance(entity_id, str):
            raise InvalidQueryError(f"An entity id is a string, got {entity_id!r}")
        return self.where("id", "=", entity_id)

    def order(self, *args: Any) -> "Query":
        """Add sort keys: ``.order("created_at", "DESC")``, ``.order("name")`` (ASC),
        ``.order([["a", "ASC"], ["b", "DESC"]])`` or ``.order(("a", "ASC"), ("b", "DESC"))``."""
        if len(args) in (1, 2) and isinstance(args[0], str):
            clauses = [[args[0], args[1] if len(args) == 2 else "ASC"]]
        elif len(args) == 1 and isinstance(args[0], (list, tuple)) and args[0] and isinstance(args[0][0], (list, tuple)):
            clauses = [list(c) for c in args[0]]
        elif args and all(isinstance(a, (list, tuple)) for a in args):
            clauses = [list(c) for c in args]
        else:
            raise InvalidQueryError(f"order() takes (attribute, 'ASC'|'DESC') or a list of such pairs, got {args!r}")
        for c in clauses:
            if len(c) == 1:
                c.append("ASC")
            if len(c) != 2 or not isinstance(c[0], str) or c[1] not in ("ASC", "DESC"):
                raise InvalidQueryError(f"Invalid order clause {c!r}: use [attribute, 'ASC'|'DESC']")
        self._check({"order": clauses})
        return self._with({"order": list(self._q.get("order") or []) + clauses})

    def limit(self, n: int) -> "Query":
        """At most ``n`` results."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidQueryError(f"limit must be a non-negative integer, got {n!r}")
        return self._with({"limit": n})

    def after(self, cursor: Any, inclusive: bool = False) -> "Query":
        """Start after ``cursor``: one value per order key (a list), a single value, or a result
        document (its values of the order keys are used). Needs ``order``; the last order key
        should make the cursor unique (for example ``id``)."""
        if not isinstance(inclusive, bool):
            raise InvalidQueryError(f"inclusive must be a bool, got {inclusive!r}")
        order = self._q.get("order")
        if cursor is None:
            return self._with({"after": None})
        if isinstance(cursor, Mapping):
            if not order:
                raise InvalidQueryError("after(document) needs order() first, to know which values form the cursor")
            from ._semantics import MISSING, get_path

            values = []
            for attr, _ in order:
                v = get_path(cursor, attr.split("."))
                values.append(None if v is MISSING else v)
        elif isinstance(cursor, (list, tuple)):
            values = list(cursor)
        else:
            values = [cursor]
        values = [to_filter_value(v) for v in values]
        if order and len(values) != len(order):
            raise InvalidQueryError(f"after cursor {values!r} must have one value per order key ({len(order)})")
        after = [values, inclusive]
        if order:
            self._check({"order": order, "after": after})
        return self._with({"after": after})

    def select(self, attributes: Iterable[str]) -> "Query":
        """Only these attributes in each result (dotted record paths allowed)."""
        if isinstance(attributes, str):
            raise InvalidQueryError(f"select() takes a list of attribute names, got the string {attributes!r}")
        attrs = list(attributes)
        for a in attrs:
            if not isinstance(a, str) or not a:
                raise InvalidQueryError(f"select attribute must be a non-empty string, got {a!r}")
        self._check({"select": attrs})
        return self._with({"select": attrs})

    def include(self, alias: str, spec: Any = None, *, cardinality: Optional[str] = None) -> "Query":
        """Include related entities under ``alias``.

            .include("owner")                               # the schema relation "owner"
            .include("mine", "owner")                       # relation "owner" under another alias
            .include("recent", {"_extends": "posts", "limit": 3})
            .include("notes", Query("notes").where("todo_id", "=", "$1.id"), cardinality="many")
        """
        if not isinstance(alias, str) or not alias:
            raise InvalidQueryError(f"include alias must be a non-empty string, got {alias!r}")
        if cardinality is not None and cardinality not in ("one", "many"):
            raise InvalidQueryError(f"cardinality must be 'one' or 'many', got {cardinality!r}")
        inc: Any
        if spec is None or spec is True:
            if cardinality is not None:
                raise InvalidQueryError("cardinality comes from the schema relation; pass a subquery to set it")
            inc = None
        elif isinstance(spec, str):
            inc = {"_extends": spec}
        elif isinstance(spec, Query) or (isinstance(spec, Mapping) and "collectionName" in spec):
            inc = {"subquery": _query_json(spec, "include subquery"), "cardinality": cardinality or "many"}
        elif isinstance(spec, Mapping) and "subquery" in spec:
            inc = {"subquery": _query_json(spec["subquery"], "include subquery"),
                   "cardinality": cardinality or spec.get("cardinality") or "many"}
        elif isinstance(spec, Mapping) and "_extends" in spec:
            inc = copy.deepcopy(dict(spec))
            if inc.get("where") is not None:
                inc["where"] = [_filter(f) for f in inc["where"]]
        else:
            raise InvalidQueryError(f"include {alias!r}: expected a relation name, a subquery or a relation extension, got {spec!r}")
        self._check({"include": {alias: inc}})
        return self._with({"include": {**(self._q.get("include") or {}), alias: inc}})

    def vars(self, variables: Mapping[str, Any]) -> "Query":
        """Query variables, used in filters as ``$query.<name>``."""
        if not isinstance(variables, Mapping):
            raise InvalidQueryError(f"vars() takes a dict, got {variables!r}")
        return self._with({"vars": {**(self._q.get("vars") or {}), **{str(k): to_filter_value(v) for k, v in variables.items()}}})

    # -- output
    def to_json(self) -> Dict[str, Any]:
        """The CollectionQuery JSON (only the keys that are set), safe to modify."""
        return copy.deepcopy({k: self._q[k] for k in _KEYS if k in self._q and self._q[k] is not None})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Query) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        import json

        return hash(json.dumps(self.to_json(), sort_keys=True, default=repr))

    def __repr__(self) -> str:
        return f"Query({self.to_json()!r})"
