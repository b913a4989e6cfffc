"""Value semantics of the Triplit query engine, in Python.

The server compares, orders and coerces values the way JavaScript does (``compareValue`` in
``@triplit/db``'s codec): ``null < object < array < number < string < boolean``, strings by
UTF-16 code units, booleans ``false < true``. Local results must come out in exactly the
server's order, so every comparison in this package goes through :func:`order_key`, an
order-embedding of that rule into Python-comparable tuples.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

from .._util.jsnumber import js_number_str


# A missing attribute (JS ``undefined``). Filters treat it like null; select, the
# server's view cache and relational variables tell the two apart.
class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> "_Missing":
        return self

    def __deepcopy__(self, memo: Any) -> "_Missing":
        return self

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class JSSet:
    """A filter value the server holds as a JS ``Set`` (arrays in ``in``/``nin`` filters).

    Membership is SameValueZero: strings and numbers by value, ``True`` is not ``1``,
    objects never match. Iteration keeps first-insertion order (the server looks ids up in
    that order).
    """

    __slots__ = ("values", "_strs", "_nums", "_bools", "_has_none")

    def __init__(self, values: Sequence[Any]) -> None:
        seen: List[Any] = []
        strs, nums, bools = set(), set(), set()
        has_none = False
        for v in values:
            if v is None or v is MISSING:
                if not has_none:
                    seen.append(v)
                has_none = True
            elif v is True or v is False:
                if v not in bools:
                    bools.add(v)
                    seen.append(v)
            elif isinstance(v, str):
                if v not in strs:
                    strs.add(v)
                    seen.append(v)
            elif isinstance(v, (int, float)):
                if v not in nums:
                    nums.add(v)
                    seen.append(v)
            else:
                seen.append(v)  # objects are kept but never match
        self.values = seen
        self._strs = frozenset(strs)
        self._nums = frozenset(nums)
        self._bools = frozenset(bools)
        self._has_none = has_none

    def has(self, v: Any) -> bool:
        t = type(v)
        if t is str:
            return v in self._strs
        if t is bool:
            return v in self._bools
        if t is int or t is float:
            return v in self._nums
        if v is None or v is MISSING:
            return self._has_none
        return False

    def __repr__(self) -> str:
        return f"JSSet({self.values!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSSet) and self.values == other.values

    def __hash__(self) -> int:
        return hash(tuple(map(repr, self.values)))


def has_no_value(v: Any) -> bool:
    return v is None or v is MISSING


# --- strings in UTF-16 order ------------------------------------------------------------

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _to_surrogates(m: "re.Match[str]") -> str:
    c = ord(m.group()) - 0x10000
    return chr(0xD800 + (c >> 10)) + chr(0xDC00 + (c & 0x3FF))


def u16(s: str) -> str:
    """``s`` rewritten so that Python's code point order equals JS's UTF-16 code unit order."""
    if s.isascii():
        return s
    return _ASTRAL.sub(_to_surrogates, s)


def u16_safe(s: str) -> bool:
    """True when comparing any string with ``s`` by code points gives the UTF-16 answer."""
    return s.isascii() or max(s) < "\ud800"


# --- order ------------------------------------------------------------------------------

NULL_KEY: Tuple[Any, ...] = (0,)
_OBJ, _SETOBJ = 0, 1


def order_key(v: Any) -> Tuple[Any, ...]:
    """A key such that ``order_key(a) < order_key(b)`` iff JS ``compareValue(a, b) < 0``."""
    t = type(v)
    if t is str:
        return (4, v if v.isascii() else u16(v))
    if t is bool:
        return (5, v)
    if t is int or t is float:
        return (3, v)
    if v is None or v is MISSING:
        return NULL_KEY
    if t is list or t is tuple:
        return (2, tuple(order_key(x) for x in v))
    if t is dict:
        items = sorted(((u16(k), x) for k, x in v.items() if x is not MISSING), key=lambda kv: kv[0])
        return (1, _OBJ, tuple((k, order_key(x)) for k, x in items))
    if isinstance(v, JSSet):
        # A Set is a class instance to the server: after every plain object, before arrays.
        return (1, _SETOBJ)
    if isinstance(v, str):
        return (4, u16(v))
    if isinstance(v, bool):
        return (5, bool(v))
    if isinstance(v, (int, float)):
        return (3, v)
    if isinstance(v, dict):
        return order_key(dict(v))
    if isinstance(v, (list, tuple)):
        return order_key(list(v))
    raise TypeError(f"cannot order a value of type {type(v).__name__}: {v!r}")


def compare_value(a: Any, b: Any) -> int:
    """JS ``compareValue``: -1, 0 or 1."""
    ka, kb = order_key(a), order_key(b)
    return (ka > kb) - (ka < kb)


def safe_compare(a: Any, b: Any) -> int:
    """The server view cache's comparison: ``undefined`` sorts before everything, even null."""
    if a is MISSING and b is MISSING:
        return 0
    if a is MISSING:
        return -1
    if b is MISSING:
        return 1
    return compare_value(a, b)


# --- paths -------------------------------------------------------------------------------


def get_path(doc: Any, parts: Sequence[str]) -> Any:
    """JS ``ValuePointer.Get``: the value at a dotted path, or MISSING.

    Where the server would read a property of ``null`` (and fail), this returns MISSING.
    """
    cur = doc
    for p in parts:
        t = type(cur)
        if t is dict:
            cur = cur.get(p, MISSING)
        elif t is list:
            if p.isdigit() and int(p) < len(cur):
                cur = cur[int(p)]
            else:
                return MISSING
        else:
            return MISSING
        if cur is MISSING:
            return MISSING
    return cur


def make_getter(path: str) -> Callable[[Any], Any]:
    """A fast reader of ``path`` that returns None for both null and missing."""
    parts = path.split(".")
    if len(parts) == 1:
        key = parts[0]
        return lambda d: d.get(key)
    if len(parts) == 2:
        k0, k1 = parts

        def get2(d: Any) -> Any:
            v = d.get(k0)
            if type(v) is dict:
                return v.get(k1)
            if v is None:
                return None
            v = get_path(v, (k1,))
            return None if v is MISSING else v

        return get2

    def getn(d: Any) -> Any:
        v = get_path(d, parts)
        return None if v is MISSING else v

    return getn


def set_path(target: Dict[str, Any], parts: Sequence[str], value: Any) -> None:
    """JS ``ValuePointer.Set`` (creates intermediate objects); MISSING values are left out."""
    cur = target
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            if p in cur and nxt is not None:
                return
            nxt = {}
            cur[p] = nxt
        cur = nxt
    if value is not MISSING:
        cur[parts[-1]] = value


# --- JavaScript coercions ---------------------------------------------------------------


def js_string(v: Any) -> str:
    """JS ``String(v)`` for JSON values (what a regex ``test`` sees)."""
    t = type(v)
    if t is str:
        return cast(str, v)
    if v is None:
        return "null"
    if v is MISSING:
        return "undefined"
    if t is bool:
        return "true" if v else "false"
    if t is int or t is float:
        return js_number_str(v)
    if t is list or t is tuple:
        return ",".join("" if (x is None or x is MISSING) else js_string(x) for x in v)
    return "[object Object]"


def js_truthy(v: Any) -> bool:
    if v is None or v is MISSING or v is False:
        return False
    t = type(v)
    if t is str:
        return cast(str, v) != ""
    if t is int or t is float:
        return v != 0 and not (t is float and math.isnan(v))
    return True


_PARSE_FLOAT = re.compile(r"\s*([+-]?(?:Infinity|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))")


def js_parse_float(s: str) -> float:
    m = _PARSE_FLOAT.match(s)
    if not m:
        return math.nan
    return float(m.group(1).replace("Infinity", "inf"))


# --- like ---------------------------------------------------------------------------------

_NOT_EOL = "[^\\n\\r\\u2028\\u2029]"
_like_cache: Dict[str, "re.Pattern[str]"] = {}


def like_regex(pattern: str) -> "re.Pattern[str]":
    """The server's ``like``: ``%`` any run, ``_`` one character, case-insensitive, whole string.

    JS ``.`` does not match line terminators, and there is no escape for ``%`` or ``_``.
    """
    rx = _like_cache.get(pattern)
    if rx is None:
        parts = []
        for ch in pattern:
            if ch == "%":
                parts.append(_NOT_EOL + "*")
            elif ch == "_":
                parts.append(_NOT_EOL)
            else:
                parts.append(re.escape(ch))
        rx = re.compile("".join(parts), re.IGNORECASE)
        if len(_like_cache) > 1024:
            _like_cache.clear()
        _like_cache[pattern] = rx
    return rx


def like_matcher(pattern: str) -> Callable[[str], bool]:
    """A test of strings against ``pattern`` with :func:`like_regex`'s meaning, made cheap for the
    usual patterns (``%x%``, ``x%``, ``%x``, ``x`` with no ``_``): plain substring tests on ASCII
    strings, the regex for everything else (Unicode case folding, line terminators)."""
    fullmatch = like_regex(pattern).fullmatch
    core = pattern.strip("%")
    lead, trail = pattern.startswith("%"), pattern.endswith("%") and len(pattern) > 1
    if "%" in core or "_" in core or not core.isascii() or "\n" in core or "\r" in core:
        return lambda s: fullmatch(s) is not None
    lit = core.lower()
    if lead and trail:
        def quick(s: str) -> bool:
            return lit in s.lower() and "\n" not in s and "\r" not in s
    elif lead:
        def quick(s: str) -> bool:
            return s.lower().endswith(lit) and "\n" not in s and "\r" not in s
    elif trail:
        def quick(s: str) -> bool:
            return s.lower().startswith(lit) and "\n" not in s and "\r" not in s
    else:
        def quick(s: str) -> bool:
            return s.lower() == lit

    def match(s: str) -> bool:
        return quick(s) if s.isascii() else fullmatch(s) is not None

    return match


# --- dates -------------------------------------------------------------------------------


def iso_date(value: Any) -> str:
    """JS ``Date.prototype.toISOString`` for a datetime/date (naive datetimes are UTC)."""
    if isinstance(value, _dt.datetime):
        d = value  # a typed name: re-assigning the Any parameter would lose the narrowing
        if d.tzinfo is not None:
            d = d.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    if isinstance(value, _dt.date):
        return value.strftime("%Y-%m-%dT00:00:00.000Z")
    raise TypeError(f"not a date: {value!r}")


_ISO = re.compile(
    r"^([+-]\d{6}|\d{4})(?:-(\d{2})(?:-(\d{2}))?)?"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?$"
)


def parse_js_date(value: Any) -> Optional[str]:
    """Encode a date the way the server's schema does (``new Date(x).toISOString()``), or None.

    Accepts datetimes, epoch milliseconds and ISO-8601 strings (a string without an offset is
    taken as UTC, as on a server running in UTC).
    """
    if isinstance(value, (_dt.datetime, _dt.date)):
        return iso_date(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if math.isnan(value):
            return None
        epoch = _dt.datetime(1970, 1, 1)
        return iso_date(epoch + _dt.timedelta(milliseconds=value))
    if not isinstance(value, str):
        return None
    m = _ISO.match(value.strip())
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        dt = _dt.datetime(
            int(y), int(mo or 1), int(d or 1), int(hh or 0), int(mi or 0), int(ss or 0),
            int((frac or "0")[:6].ljust(6, "0")),
        )
    except ValueError:
        return None
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        dt -= sign * _dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    return iso_date(dt)


def to_filter_value(v: Any) -> Any:
    """Python values the server would receive as JSON: datetimes as ISO strings, sets/tuples as lists."""
    if isinstance(v, (_dt.datetime, _dt.date)):
        return iso_date(v)
    if isinstance(v, (set, frozenset)):
        return sorted((to_filter_value(x) for x in v), key=order_key)
    if isinstance(v, tuple):
        return [to_filter_value(x) for x in v]
    if isinstance(v, list):
        return [to_filter_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): to_filter_value(x) for k, x in v.items()}
    return v
