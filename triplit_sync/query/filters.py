"""Filter statements compiled into Python predicates, with the server's per-operator meaning.

Each operator follows ``evaluateFilterStatement`` of ``@triplit/db`` 1.1.x, including its
handling of null/missing values (see the table in :func:`compile_statement`). Set attributes
use the ``SET_``-prefixed operators that query preparation produces when a schema says the
attribute is a set: "some item matches".
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, cast

from ..errors import InvalidQueryError
from ._semantics import (
    MISSING,
    JSSet,
    js_parse_float,
    js_string,
    js_truthy,
    like_matcher,
    make_getter,
    order_key,
    u16_safe,
)

Predicate = Callable[[Any], bool]

SET_PREFIX = "SET_"
#: Operators the server's filter evaluator knows (without the internal ``SET_`` prefix).
OPERATORS = frozenset(["=", "!=", "<", ">", "<=", ">=", "in", "nin", "like", "nlike", "has", "!has", "isDefined"])


def _none(v: Any) -> bool:
    return v is None or v is MISSING


def _always(result: bool) -> Predicate:
    return (lambda d: True) if result else (lambda d: False)


def value_test(op: str, fv: Any) -> Callable[[Any], bool]:
    """A test of one (already read) value against ``fv`` with the server's semantics."""
    if op.startswith(SET_PREFIX):
        return _set_test(op[len(SET_PREFIX):], fv)
    fv_none = _none(fv)
    if op == "=":
        if fv_none:
            return _none
        t = type(fv)
        if t is str:
            return lambda v: v == fv
        if t is bool:
            return lambda v: v is fv
        if t is int or t is float:
            # JS compares numbers with < and >, so NaN (from set items parsed as numbers) equals any number.
            return lambda v: (type(v) is int or type(v) is float) and not (v < fv or v > fv)
        k = order_key(fv)
        return lambda v: (not _none(v)) and order_key(v) == k
    if op == "!=":
        eq = value_test("=", fv)
        return lambda v: not eq(v)
    if op in ("<", ">", "<=", ">="):
        return _range_test(op, fv, fv_none)
    if op == "like" or op == "nlike":
        neg = op == "nlike"
        if fv_none:
            return lambda v: neg
        if not isinstance(fv, str):
            # The server fails only when a value actually reaches the pattern.
            def bad_pattern(v: Any) -> bool:
                if v is None or v is MISSING:
                    return neg
                raise InvalidQueryError(f"'{op}' needs a string pattern, got {fv!r}")

            return bad_pattern
        matches = like_matcher(fv)

        def like(v: Any) -> bool:
            if v is None or v is MISSING:
                return neg
            return matches(v if type(v) is str else js_string(v)) is not neg

        return like
    if op == "in" or op == "nin":
        neg = op == "nin"
        if fv_none:
            return lambda v: neg
        if isinstance(fv, JSSet):
            has = fv.has
            if neg:
                return lambda v: True if _none(v) else not has(v)
            return lambda v: False if _none(v) else has(v)
        if isinstance(fv, list):
            # The server's 'nin' over a plain array is 'includes' (a bug it never reaches
            # with literal arrays, which become Sets); mirrored for variables that stay arrays.
            s = JSSet(fv)
            return lambda v: (neg if _none(v) else s.has(v))
        if isinstance(fv, dict):
            if neg:
                return lambda v: True if _none(v) else not js_truthy(fv.get(js_string(v)))
            return lambda v: False if _none(v) else js_truthy(fv.get(js_string(v)))
        return lambda v: neg if _none(v) else False
    if op == "isDefined":
        want = js_truthy(fv)
        return (lambda v: not _none(v)) if want else _none
    # The server fails only once a value reaches an operator it does not know.
    if op in ("has", "!has"):
        msg = (f"The operator {op} is not recognized for a value that is not a set "
               "(the server only evaluates has/!has on attributes its schema declares as sets)")
    else:
        msg = f"The operator {op!r} is not recognized"

    def unknown(v: Any) -> bool:
        raise InvalidQueryError(msg)

    return unknown


def _range_test(op: str, fv: Any, fv_none: bool) -> Callable[[Any], bool]:
    if op == ">":
        if fv_none:
            return lambda v: not _none(v)
    elif op == ">=":
        if fv_none:
            return lambda v: True
    elif op == "<":
        if fv_none:
            return lambda v: False
    else:  # <=
        if fv_none:
            return _none
    none_result = op in ("<", "<=")
    t = type(fv)
    if (t is str and u16_safe(fv)) or t is int or t is float:
        # Same-type values compare natively; other types fall back to the rank order.
        num = t is not str
        kf = order_key(fv)

        def cmp_fast(v: Any) -> int:
            tv = type(v)
            if num:
                if tv is int or tv is float:
                    return cast(int, (v > fv) - (v < fv))
            elif tv is str:
                return cast(int, (v > fv) - (v < fv))
            kv = order_key(v)
            return (kv > kf) - (kv < kf)

        cmp = cmp_fast
    else:
        kf = order_key(fv)

        def cmp(v: Any) -> int:
            kv = order_key(v)
            return (kv > kf) - (kv < kf)

    if op == ">":
        return lambda v: False if _none(v) else cmp(v) > 0
    if op == ">=":
        return lambda v: False if _none(v) else cmp(v) >= 0
    if op == "<":
        return lambda v: none_result if _none(v) else cmp(v) < 0
    return lambda v: none_result if _none(v) else cmp(v) <= 0


def _infer_set_value(fv: Any) -> Callable[[str], Any]:
    if fv is True or fv is False:
        return lambda k: k == "true"
    if type(fv) in (int, float):
        return js_parse_float
    return lambda k: k


def _set_test(op: str, fv: Any) -> Callable[[Any], bool]:
    infer = _infer_set_value(fv)

    def check(v: Any) -> None:
        if not (v is None or v is MISSING or isinstance(v, (dict, list))):
            raise InvalidQueryError(f"The operator requires a set value, but got {v!r}")

    if op == "isDefined":
        want = js_truthy(fv)
        return (lambda v: not _none(v)) if want else _none
    if op in ("has", "!has"):
        neg = op == "!has"
        if fv is True or fv is False:
            want_key = "true" if fv else "false"
            match: Optional[Callable[[str], bool]] = lambda k: (k == "true") == (want_key == "true")
        elif type(fv) in (int, float):
            match = lambda k: js_parse_float(k) == fv
        elif isinstance(fv, str):
            match = lambda k: k == fv
        else:
            match = None
        if match is not None:
            m = match

            def has(v: Any) -> bool:
                check(v)
                if _none(v):
                    return neg
                for k, alive in _live_items(v):
                    if m(k):
                        return not neg
                return neg

            return has

        def no_key(v: Any) -> bool:
            check(v)
            return neg

        return no_key
    item = value_test(op, fv)

    def some(v: Any) -> bool:
        check(v)
        if _none(v):
            return False
        for k, alive in _live_items(v):
            if item(infer(k)):
                return True
        return False

    return some


def _live_items(v: Any) -> Any:
    if isinstance(v, dict):
        return ((k, a) for k, a in v.items() if js_truthy(a))
    # A JS array's keys are its indexes.
    return ((str(i), x) for i, x in enumerate(v) if js_truthy(x))


def compile_statement(path: str, op: str, fv: Any) -> Predicate:
    """A predicate over documents for ``[path, op, fv]`` (``fv`` already bound).

    Null and missing values, as on the server: ``= null`` matches both; ``!= x`` matches them;
    ``>``/``>=`` never match them; ``<``/``<=`` always match them (null is less than
    everything); ``like`` never, ``nlike`` always; ``in`` never, ``nin`` always; set operators
    other than ``!has``/``isDefined`` never.
    """
    if "." not in path and not op.startswith(SET_PREFIX):
        fused = _fused(path, op, fv)
        if fused is not None:
            return fused
    test = value_test(op, fv)
    get = make_getter(path)
    return lambda d: test(get(d))


def _fused(key: str, op: str, fv: Any) -> Optional[Predicate]:
    """Single-call predicates for the hot cases (a top-level attribute, a plain operator)."""
    if op == "=" and (fv is True or fv is False):
        return lambda d: d.get(key) is fv
    if op == "=" and type(fv) is str:
        return lambda d: d.get(key) == fv
    if op == "!=" and (fv is True or fv is False):
        return lambda d: d.get(key) is not fv
    if op in ("like", "nlike") and isinstance(fv, str):
        matches = like_matcher(fv)
        if op == "like":

            def like(d: Any) -> bool:
                v = d.get(key)
                if v is None:
                    return False
                return matches(v if type(v) is str else js_string(v))

            return like

        def nlike(d: Any) -> bool:
            v = d.get(key)
            if v is None:
                return True
            return not matches(v if type(v) is str else js_string(v))

        return nlike
    return None


def and_all(preds: Sequence[Predicate]) -> Predicate:
    preds = list(preds)
    if not preds:
        return lambda d: True
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda d: a(d) and b(d)
    if len(preds) == 3:
        a, b, c = preds
        return lambda d: a(d) and b(d) and c(d)
    return lambda d: all(p(d) for p in preds)


def or_any(preds: Sequence[Predicate]) -> Predicate:
    preds = list(preds)
    if not preds:
        return lambda d: False
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda d: a(d) or b(d)
    return lambda d: any(p(d) for p in preds)


# --- binding of variables -----------------------------------------------------------------


def is_variable(v: Any) -> bool:
    return type(v) is str and v[:1] == "$"


def bind_resolved(value: Any) -> Any:
    """What the server does to a resolved variable: arrays become Sets, set maps inside them expand."""
    if isinstance(value, list):
        out: List[Any] = []
        for x in value:
            if isinstance(x, dict):
                out.extend(k for k, alive in x.items() if js_truthy(alive))
            else:
                out.append(x)
        return JSSet(out)
    return value


Resolver = Callable[[str], Any]
Factory = Callable[[Resolver], Predicate]


def compile_static_filter(f: Any) -> Factory:
    """Compile a non-relational filter (statement, group, boolean) into a predicate factory.

    The factory takes a resolver for the variables left after preparation (relational ``$N.x``
    and view references) and returns the predicate; constant parts are compiled only once.
    """
    if f is True or f is False:
        p = _always(f)
        return lambda r: p
    if isinstance(f, dict) and "mod" in f:
        mod = f["mod"]
        subs = [compile_static_filter(x) for x in f.get("filters", [])]
        if mod not in ("and", "or"):
            p = _always(False)
            return lambda r: p
        comb = and_all if mod == "and" else or_any
        if all(getattr(s, "constant", False) for s in subs):
            p = comb([s(_no_vars) for s in subs])
            fac: Any = lambda r: p
            fac.constant = True
            return cast(Factory, fac)
        return lambda r: comb([s(r) for s in subs])
    if isinstance(f, (list, tuple)) and len(f) == 3:
        path, op, fv = f
        if is_variable(fv):
            test_op = op

            def bound(r: Resolver) -> Predicate:
                return compile_statement(path, test_op, bind_resolved(r(fv)))

            return bound
        p = compile_statement(path, op, fv)
        fac = lambda r: p
        fac.constant = True
        return cast(Factory, fac)
    if isinstance(f, dict) and "exists" in f:
        raise InvalidQueryError(
            "Could not compile query: an exists filter inside an and/or group must refer to its "
            f"parent through exactly one variable filter (the server rejects this too): {f!r}"
        )
    raise InvalidQueryError(f"Filter is not valid format: {f!r}")


def _no_vars(name: str) -> Any:
    raise AssertionError(name)


def _const(fac: Factory) -> bool:
    return bool(getattr(fac, "constant", False))


__all__ = [
    "OPERATORS",
    "SET_PREFIX",
    "compile_statement",
    "compile_static_filter",
    "value_test",
    "is_variable",
    "bind_resolved",
    "and_all",
    "or_any",
]

