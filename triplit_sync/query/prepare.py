"""Query preparation: validate a CollectionQuery against a schema and normalize it.

Mirrors ``prepareQuery`` + ``simplifyQuery`` of ``@triplit/db`` 1.1.x, which the server runs on
every query, so that local evaluation sees the same query the server evaluates:

* schema relations in ``include`` become ``{subquery, cardinality}``;
* relation paths in filters (``["author.name", "=", x]``) and ``{"exists": {"_extends": ...}}``
  become raw ``exists`` subqueries (which keep only ``collectionName`` and ``where``);
* operators on set attributes get the internal ``SET_`` prefix;
* static variables (``$global``, ``$session``/``$token``, ``$query``, ``$role``) are replaced by
  their values (missing ones by None); a bare ``$x`` means ``$1.x``; relational variables that
  walk through a relation become ``exists`` subqueries;
* arrays in filter values become :class:`~triplit_sync.query._values.JSSet`;
* order by a relation path (``author.name``) gets the relation subquery attached;
* where clauses are simplified (nested same-kind groups flattened, single-filter groups
  unwrapped, duplicates dropped, ``and`` with ``false`` collapsed, ...).

Every problem raises :class:`~triplit_sync.errors.InvalidQueryError` naming the bad value.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..errors import InvalidQueryError
from ._schema import (
    Traverser,
    attribute_at,
    collections_of,
    is_relation,
    schema_entries,
    supported_operations,
)
from ._semantics import MISSING, JSSet, get_path, iso_date, parse_js_date
from .filters import OPERATORS, SET_PREFIX
from .simplify import simplify

Collections = Mapping[str, Any]

_STATIC_SCOPES = {"$global", "$session", "$token", "$role", "$query", "$prev"}


# --- variables ------------------------------------------------------------------------------


def variable_components(var: str) -> List[Any]:
    """``getVariableComponents``: [scope, *path]; scope is an int (relational), a static scope or None."""
    comps: List[Any] = var.split(".")
    if len(comps) == 1:
        return [None, comps[0][1:]]
    scope = _parse_scope(comps[0])
    if scope is None:
        return [None, comps[0][1:]] + comps[1:]
    comps[0] = scope
    return comps


def _parse_scope(s: str) -> Any:
    if s in _STATIC_SCOPES:
        return "$session" if s == "$token" else s
    digits = ""
    rest = s[1:].lstrip()
    sign = ""
    if rest[:1] in "+-" and rest[:1]:
        sign, rest = rest[0], rest[1:]
    for ch in rest:
        if ch.isdigit():
            digits += ch
        else:
            break
    if digits:
        return int(sign + digits)
    return None


def increment_var(v: Any, step: int = 1) -> Any:
    if not (isinstance(v, str) and v[:1] == "$"):
        return v
    comps = variable_components(v)
    if isinstance(comps[0], int):
        return "$" + str(comps[0] + step) + "." + ".".join(comps[1:])
    return v


def _increment_where(where: Sequence[Any], step: int) -> List[Any]:
    out: List[Any] = []
    for f in where:
        if _is_statement(f):
            out.append([f[0], f[1], increment_var(f[2], step)])
            continue
        if _is_group(f):
            out.append({**f, "filters": _increment_where(f.get("filters") or [], step)})
            continue
        if _is_subquery_exists(f):
            out.append({"exists": _increment_query(f["exists"], step)})
            continue
        if _is_relation_exists(f):
            ex = f["exists"]
            # The server appends the original filter after the incremented copy.
            out.append(
                {"exists": {**ex, "where": _increment_where(ex["where"], step) if ex.get("where") else None}}
            )
        out.append(f)
    return out


def _increment_query(q: Mapping[str, Any], step: int) -> Dict[str, Any]:
    if not q.get("where"):
        return dict(q)
    return {**q, "where": _increment_where(q["where"], step)}


# --- filter shapes ------------------------------------------------------------------------------


def _is_statement(f: Any) -> bool:
    return isinstance(f, (list, tuple)) and len(f) == 3 and isinstance(f[0], str) and isinstance(f[1], str)


def _is_group(f: Any) -> bool:
    return isinstance(f, Mapping) and "mod" in f


def _is_subquery_exists(f: Any) -> bool:
    return isinstance(f, Mapping) and isinstance(f.get("exists"), Mapping) and "collectionName" in f["exists"]


def _is_relation_exists(f: Any) -> bool:
    return isinstance(f, Mapping) and isinstance(f.get("exists"), Mapping) and "_extends" in f["exists"]


def _flip(op: str) -> str:
    flips = {"=": "=", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<=", "in": "SET_has",
             "nin": "SET_!has", "SET_has": "in", "SET_!has": "nin"}
    if op not in flips:
        raise InvalidQueryError(f"Cannot flip operator {op!r} (needed for a relational variable path)")
    return flips[op]


def _filter_value(v: Any) -> Any:
    """Python conveniences on top of JSON: datetimes, sets and tuples."""
    import datetime as _dt

    if isinstance(v, (_dt.datetime, _dt.date)):
        return iso_date(v)
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    return v


class _Preparer:
    def __init__(self, schema: Optional[Collections], variables: Mapping[str, Any]) -> None:
        self.schema = schema
        self.variables = variables
        self.stack: List[Mapping[str, Any]] = []

    # -- whole queries
    def query(self, q: Any) -> Dict[str, Any]:
        if not isinstance(q, Mapping):
            raise InvalidQueryError(f"A query must be a JSON object, got {q!r}")
        self.stack.append(q)
        try:
            return {
                "collectionName": self.collection_name(q),
                "select": self.select(q),
                "include": self.include(q),
                "where": self.where(q),
                "order": self.order(q),
                "limit": self.limit(q),
                "after": self.after(q),
            }
        finally:
            self.stack.pop()

    def collection_name(self, q: Mapping[str, Any]) -> str:
        name = q.get("collectionName")
        if not name:
            raise InvalidQueryError(f"Collection name must be provided (got {name!r})")
        if not isinstance(name, str):
            raise InvalidQueryError(f"Collection name must be a string, got {name!r}")
        if self.schema is not None and name not in self.schema and name != "_metadata":
            raise InvalidQueryError(f"Collection {name!r} does not exist in the schema")
        return name

    def select(self, q: Mapping[str, Any]) -> Optional[List[str]]:
        sel = q.get("select")
        if not sel:
            return sel
        if not isinstance(sel, (list, tuple)):
            raise InvalidQueryError(f"select must be a list of attribute names, got {sel!r}")
        for s in sel:
            if not isinstance(s, str):
                raise InvalidQueryError(f"Select field {s!r} is not a string")
            if self.schema is not None:
                t = Traverser(self.schema, q["collectionName"])
                for part in s.split("."):
                    t = t.get(part)
                    if t.current is None:
                        raise InvalidQueryError(f"Select field {s!r} is not valid: path not found in {q['collectionName']!r}")
                    if is_relation(t.current):
                        raise InvalidQueryError(f"Select field {s!r} is a relation; use include instead")
        return list(sel)

    def include(self, q: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        inc = q.get("include")
        if not inc:
            return inc
        if not isinstance(inc, Mapping):
            raise InvalidQueryError(f"include must be an object of alias -> inclusion, got {inc!r}")
        out: Dict[str, Any] = {}
        coll = q["collectionName"]
        for alias, rel in inc.items():
            if self.schema is not None:
                rel_name = None
                ext: Optional[Dict[str, Any]] = None
                if rel is None or rel is True:
                    rel_name = alias
                elif isinstance(rel, Mapping) and "_extends" in rel:
                    ext = {k: v for k, v in rel.items() if k != "_extends"}
                    rel_name = rel["_extends"]
                if rel_name:
                    definition = attribute_at(str(rel_name).split("."), self.schema, coll)
                    if is_relation(definition):
                        rel = {"subquery": _merge(definition["query"], ext), "cardinality": definition.get("cardinality")}
                    elif definition is None:
                        raise InvalidQueryError(
                            f"Include {alias!r}: relation {rel_name!r} does not exist in collection {coll!r}"
                        )
                    else:
                        raise InvalidQueryError(f"Include {alias!r}: {rel_name!r} of {coll!r} is not a relation")
            if not (isinstance(rel, Mapping) and "subquery" in rel):
                raise InvalidQueryError(
                    f"Include {alias!r} must be {{'subquery': ..., 'cardinality': 'one'|'many'}}"
                    + ("" if self.schema is not None else " (schema relations need a schema)")
                    + f", got {rel!r}"
                )
            card = rel.get("cardinality")
            if card not in ("one", "many"):
                raise InvalidQueryError(f"Include {alias!r}: invalid cardinality {card!r} (use 'one' or 'many')")
            out[alias] = {"subquery": self.query(rel["subquery"]), "cardinality": card}
        return out

    # -- where
    def where(self, q: Mapping[str, Any]) -> Optional[List[Any]]:
        where = q.get("where")
        if where is None:
            where = []
        if not isinstance(where, (list, tuple)):
            raise InvalidQueryError(f"Where clause must be a list, got {where!r}")
        out = [self.filter(f, q) for f in where]
        return out or None

    def filter(self, f: Any, q: Mapping[str, Any]) -> Any:
        if f is True or f is False:
            return f
        if _is_group(f):
            if f["mod"] not in ("and", "or"):
                raise InvalidQueryError(f"Invalid filter group mod {f['mod']!r} (use 'and' or 'or')")
            subs = f.get("filters")
            if not isinstance(subs, (list, tuple)):
                raise InvalidQueryError(f"Filter group needs a list of filters, got {subs!r}")
            return {"mod": f["mod"], "filters": [self.filter(x, q) for x in subs]}
        if _is_statement(f):
            return self.statement(list(f), q)
        if _is_relation_exists(f):
            return self.relation_exists(f["exists"], q)
        if _is_subquery_exists(f):
            ex = f["exists"]
            sub = {"collectionName": ex.get("collectionName"), "where": ex.get("where")}
            return {"exists": self.query(sub)}
        raise InvalidQueryError(f"Filter is not valid format: {f!r}")

    def statement(self, f: List[Any], q: Mapping[str, Any]) -> Any:
        prop, op, val = f
        val = _filter_value(val)
        if self.schema is not None:
            path = prop.split(".")
            attr_type = None
            for walked, attr in schema_entries(path, self.schema, q["collectionName"]):
                if is_relation(attr):
                    sub = dict(attr["query"])
                    subpath = ".".join(path[len(walked):])
                    if isinstance(val, str) and val[:1] == "$":
                        val = increment_var(val)
                    sub["where"] = list(sub.get("where") or []) + [[subpath, op, val]]
                    return self.filter({"exists": sub}, sub)
                attr_type = attr
            if attr_type is None:
                raise InvalidQueryError(f"Could not find property {prop!r} in collection {q['collectionName']!r}")
            if attr_type.get("type") == "set" and not op.startswith(SET_PREFIX):
                op = SET_PREFIX + op
            if op not in supported_operations(attr_type):
                shown = op[len(SET_PREFIX):] if attr_type.get("type") == "set" else op
                raise InvalidQueryError(
                    f"Operator {shown!r} is not valid for property {prop!r} of type {attr_type.get('type')!r}"
                )
        else:
            base = op[len(SET_PREFIX):] if op.startswith(SET_PREFIX) else op
            if base not in OPERATORS:
                raise InvalidQueryError(f"The operator {op!r} is not recognized")
        if isinstance(val, str) and val[:1] == "$":
            comps = variable_components(val)
            scope = comps[0]
            if scope is None:
                comps[0] = 1
                scope = 1
                val = "$1." + ".".join(comps[1:])
            if not isinstance(scope, int):
                # A missing variable stays undefined (MISSING): filters treat it like null,
                # but the server's de-duplication of filters tells the two apart.
                val = _filter_value(get_path(self.variables, comps))
            elif self.schema is not None:
                idx = len(self.stack) - scope - 1
                # Out of range: a subquery built on its own; evaluation reports it if it stays so.
                ref: Mapping[str, Any] = (
                    self.stack[idx] if 0 <= idx < len(self.stack) else {"collectionName": None})
                val_path = comps[1:]
                for walked, attr in schema_entries(val_path, self.schema, ref["collectionName"]):
                    if is_relation(attr):
                        sub = _increment_query(dict(attr["query"]), len(self.stack) - 1)
                        flipped_path = ".".join(val_path[len(walked):])
                        sub["where"] = list(sub.get("where") or []) + [[flipped_path, _flip(op), "$1." + prop]]
                        return self.filter({"exists": sub}, sub)
        if isinstance(val, list):
            val = JSSet(val)
        return [prop, op, val]

    def relation_exists(self, ex: Mapping[str, Any], q: Mapping[str, Any]) -> Any:
        if self.schema is None:
            raise InvalidQueryError("A schema is required to execute an exists filter on a relation")
        rel = ex["_extends"]
        ext = {k: v for k, v in ex.items() if k != "_extends"}
        rel_path = str(rel).split(".")
        walked: List[str] = []
        attr = None
        for walked, attr in schema_entries(rel_path, self.schema, q["collectionName"]):
            if is_relation(attr):
                break
        if attr is None:
            raise InvalidQueryError(f"Could not find property {rel!r} in collection {q['collectionName']!r}")
        if not is_relation(attr):
            raise InvalidQueryError(f"Cannot execute an exists filter on {rel!r}: not a relation")
        sub = dict(attr["query"])
        at_leaf = len(rel_path) == len(walked)
        if not at_leaf:
            to_add = [{"exists": {"_extends": ".".join(rel_path[len(walked):]), **ext}}]
        else:
            to_add = ext.get("where") or []
        sub["where"] = list(attr["query"].get("where") or []) + list(to_add)
        return self.filter({"exists": sub}, sub)

    # -- order / limit / after
    def order(self, q: Mapping[str, Any]) -> Optional[List[Any]]:
        order = q.get("order")
        if not order:
            return order
        if not isinstance(order, (list, tuple)):
            raise InvalidQueryError(f"order must be a list of [attribute, 'ASC'|'DESC'], got {order!r}")
        out: List[Any] = []
        for clause in order:
            if not isinstance(clause, (list, tuple)) or len(clause) < 2:
                raise InvalidQueryError(f"Invalid order clause {clause!r}: use [attribute, 'ASC'|'DESC']")
            field, direction = clause[0], clause[1]
            if direction not in ("ASC", "DESC"):
                raise InvalidQueryError(f"Invalid order direction {direction!r} for {field!r} (use 'ASC' or 'DESC')")
            if not isinstance(field, str):
                raise InvalidQueryError(f"Invalid order attribute {field!r}")
            if self.schema is not None:
                parts = field.split(".")
                t = Traverser(self.schema, q["collectionName"])
                for i, part in enumerate(parts):
                    t = t.get(part)
                    cur = t.current
                    if cur is None:
                        raise InvalidQueryError(f"Order by field {field!r} is not valid: path not found")
                    if i == len(parts) - 1 and (is_relation(cur) or cur.get("type") in ("set", "record")):
                        raise InvalidQueryError(f"Order by field {field!r} is not sortable")
                    if is_relation(cur) and cur.get("cardinality") != "one":
                        raise InvalidQueryError(
                            f"Order by field {field!r} goes through a relation whose cardinality is not 'one'"
                        )
                ref: Optional[Dict[str, Any]] = None
                for walked, attr in schema_entries(parts, self.schema, q["collectionName"]):
                    if attr is not None and is_relation(attr):
                        sub = dict(attr["query"])
                        if ref is None:
                            ref = sub
                        else:
                            ref["include"] = {**(ref.get("include") or {}),
                                              walked[-1]: {"subquery": sub, "cardinality": attr.get("cardinality")}}
                    else:
                        break
                if ref is not None:
                    out.append([field, direction, {"subquery": self.query(ref), "cardinality": "one"}])
                    continue
            out.append([field, direction])
        return out

    def limit(self, q: Mapping[str, Any]) -> Any:
        lim = q.get("limit")
        if not lim:
            return lim
        if isinstance(lim, bool) or not isinstance(lim, (int, float)):
            raise InvalidQueryError(f"Limit must be a number, got {lim!r}")
        if lim < 0:
            raise InvalidQueryError(f"Limit must be a positive number, got {lim!r}")
        return lim

    def after(self, q: Mapping[str, Any]) -> Any:
        after = q.get("after")
        if not after:
            return after
        if not isinstance(after, (list, tuple)):
            raise InvalidQueryError(f"After clause must be [cursor, inclusive], got {after!r}")
        if len(after) != 2:
            raise InvalidQueryError(f"After clause must contain a cursor and an inclusive flag, got {after!r}")
        cursor, inclusive = after
        if not isinstance(cursor, (list, tuple)):
            raise InvalidQueryError(f"After clause cursor must be a list, got {cursor!r}")
        order = q.get("order")
        if not order:
            raise InvalidQueryError("An after clause requires an order clause")
        if len(cursor) != len(order):
            raise InvalidQueryError(
                f"After clause cursor {list(cursor)!r} must have one value per order clause ({len(order)})"
            )
        if not isinstance(inclusive, bool):
            raise InvalidQueryError(f"After clause inclusive flag must be a boolean, got {inclusive!r}")
        out = []
        for i, clause in enumerate(order):
            v = _filter_value(cursor[i])
            if self.schema is not None:
                parts = str(clause[0]).split(".")
                for walked, attr in schema_entries(parts, self.schema, q["collectionName"]):
                    if attr is None:
                        raise InvalidQueryError(f"After: attribute {clause[0]!r} not found in schema")
                    if is_relation(attr):
                        raise InvalidQueryError(f"After: attribute {clause[0]!r} is relational")
                    if len(walked) == len(parts):
                        v = _encode_cursor(attr, v, clause[0])
            out.append(v)
        return [out, inclusive]


def _encode_cursor(attr: Mapping[str, Any], v: Any, name: str) -> Any:
    t: Any = attr.get("type")
    if t in ("set", "record"):
        raise InvalidQueryError(f"After: attribute {name!r} of type {t!r} is not sortable")
    if v is None:
        # Optional attributes encode null to undefined, which the server cannot compare: it
        # fails once a candidate reaches the cursor check. Required ones reject it here.
        if (attr.get("config") or {}).get("optional"):
            return MISSING
        raise InvalidQueryError(f"After: cursor value for {name!r} cannot be null")
    if t == "date":
        enc = parse_js_date(v)
        if enc is None:
            raise InvalidQueryError(f"After: cursor value {v!r} for {name!r} is not a date")
        return enc
    ok = {"boolean": lambda x: isinstance(x, bool),
          "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
          "string": lambda x: isinstance(x, str)}.get(t)
    if ok is not None and not ok(v):
        raise InvalidQueryError(f"After: cursor value {v!r} for {name!r} is not a {t}")
    enum = (attr.get("config") or {}).get("enum")
    if t == "string" and enum and v not in enum:
        raise InvalidQueryError(f"After: cursor value {v!r} for {name!r} is not one of {enum!r}")
    return v


def _merge(a: Mapping[str, Any], b: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    if not b:
        return dict(a)
    where = None
    if a.get("where") or b.get("where"):
        where = list(a.get("where") or []) + list(b.get("where") or [])
    select = None
    if a.get("select") or b.get("select"):
        select = list(a.get("select") or []) + list(b.get("select") or [])
    return {**a, **b, "where": where, "select": select}


def normalize_variables(variables: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """``{"global": {...}, "session": {...}}`` or ``{"$global": ...}`` -> ``{"$global": ..., "$session": ...}``."""
    out: Dict[str, Any] = {}
    for k, v in (variables or {}).items():
        key = k if k.startswith("$") else "$" + k
        if key == "$token":
            key = "$session"
        out[key] = v
    return out


def prepare_query(
    query: Mapping[str, Any],
    schema: Optional[Mapping[str, Any]] = None,
    variables: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Validate and normalize ``query`` as the server would (see the module docstring).

    ``variables`` maps scopes to values: ``{"$global": {...}, "$session": {...}}`` (``$token`` is
    an alias of ``$session``); the query's own ``vars`` become ``$query``.

        >>> prepare_query({"collectionName": "todos", "where": [["tags", "in", ["a"]]]})["where"]
        [['tags', 'in', JSSet(['a'])]]
    """
    cols = collections_of(schema)
    vars_ = normalize_variables(variables)
    if isinstance(query, Mapping) and query.get("vars") and "$query" not in vars_:
        vars_["$query"] = query["vars"]
    return simplify(_Preparer(cols, vars_).query(query))
