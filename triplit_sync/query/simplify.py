"""Where-clause simplification, as the server's ``simplifyQuery`` does it after preparation.

Nested groups of the same kind are flattened, single-filter groups unwrapped, empty ones
dropped, ``and`` with ``false`` (``or`` with ``true``) collapsed, an exists whose where is just
``false`` becomes ``false``, and duplicate filters are dropped. Duplicates are what the
server's filter hash cannot tell apart: every Set (array value of ``in``/``nin``) hashes alike,
so of two ``in`` filters on one attribute only the first survives.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping

from .._util.jsnumber import js_number_str
from ._semantics import MISSING, JSSet


def _hash_value(v: Any) -> str:
    """The server's ``encodeHashValue``: every Set (and object) hashes by ``JSON.stringify``."""
    if v is MISSING:
        return "a"
    if v is None:
        return "b"
    if v is True or v is False:
        return "g" + ("true" if v else "false")
    if isinstance(v, str):
        return "f" + v
    if isinstance(v, (int, float)):
        return "e" + js_number_str(v)
    if isinstance(v, list):
        return "d" + json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=lambda x: {})
    if isinstance(v, JSSet):
        return "c{}"
    return "c" + json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=lambda x: {})


def _fkey(f: Any) -> Any:
    """What the server's ``hashFilter`` tells apart (it drops filters whose hashes are equal)."""
    if f is True or f is False:
        return ("B", f)
    if _stmt(f):
        return ("S", f[0], f[1], _hash_value(f[2]))
    if _grp(f):
        return ("G", f["mod"], tuple(sorted((_fkey(c) for c in f["filters"]), key=repr)))
    if _sub(f):
        return ("Q", _qkey(f["exists"]))
    return ("?", repr(f))


def _qkey(q: Mapping[str, Any]) -> Any:
    parts: List[Any] = [q.get("collectionName")]
    if q.get("where"):
        parts.append(("W", tuple(sorted((_fkey(c) for c in q["where"]), key=repr))))
    if q.get("order"):
        parts.append(("O", tuple((c[0], c[1], _qkey(c[2]["subquery"]) if len(c) == 3 and c[2] else None)
                                 for c in q["order"])))
    if q.get("limit") is not None:
        parts.append(("L", q["limit"]))
    if q.get("after"):
        parts.append(("A", tuple(_hash_value(c) for c in q["after"][0]), q["after"][1]))
    if q.get("include"):
        parts.append(("I", tuple((k, v["cardinality"], _qkey(v["subquery"]))
                                 for k, v in sorted(q["include"].items()))))
    if q.get("select"):
        parts.append(("P", tuple(sorted(q["select"]))))
    return tuple(parts)


def _simplify_clauses(where: List[Any], group_with: str) -> List[Any]:
    clauses: List[Any] = []
    for c in where:
        s = _simplify_clause(c)
        if s is None:
            continue
        if _grp(s) and s["mod"] == group_with:
            clauses.extend(s["filters"])
        else:
            clauses.append(s)
    if group_with == "and" and any(c is False for c in clauses):
        clauses = [False]
    if group_with == "or" and any(c is True for c in clauses):
        clauses = [True]
    seen = set()
    deduped = []
    for c in clauses:
        k = _fkey(c)
        if k in seen:
            continue
        seen.add(k)
        deduped.append(c)
    if len(deduped) != len(clauses):
        return _simplify_clauses(deduped, group_with)
    return deduped


def _simplify_clause(c: Any) -> Any:
    if _grp(c):
        c["filters"] = _simplify_clauses(c["filters"], c["mod"])
        if not c["filters"]:
            return None
        if len(c["filters"]) == 1:
            return _simplify_clause(c["filters"][0])
        return c
    if _sub(c):
        sub = simplify(c["exists"])
        if sub.get("where") and len(sub["where"]) == 1 and sub["where"][0] is False:
            return False
        return {"exists": sub}
    return c


def simplify(q: Dict[str, Any]) -> Dict[str, Any]:
    if q.get("where"):
        w = _simplify_clauses(q["where"], "and")
        q["where"] = w or None
    inc = q.get("include")
    if inc is not None:
        if not inc:
            q["include"] = None
        else:
            for v in inc.values():
                v["subquery"] = simplify(v["subquery"])
    order = q.get("order")
    if order is not None:
        if not order:
            q["order"] = None
        else:
            for i, clause in enumerate(order):
                if len(clause) == 3:
                    order[i] = [clause[0], clause[1], {**clause[2], "subquery": simplify(clause[2]["subquery"])}]
    return q


def _stmt(f: Any) -> bool:
    return isinstance(f, (list, tuple)) and len(f) == 3 and isinstance(f[0], str) and isinstance(f[1], str)


def _grp(f: Any) -> bool:
    return isinstance(f, Mapping) and "mod" in f


def _sub(f: Any) -> bool:
    return isinstance(f, Mapping) and isinstance(f.get("exists"), Mapping) and "collectionName" in f["exists"]
