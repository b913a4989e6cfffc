"""Parsing a frame without unbounded recursion.

The fast parsers recurse once per nesting level: the stdlib's C scanner raises RecursionError
near the interpreter's recursion limit (~1 000 levels, less on a deep stack), orjson refuses
more than 1 024 levels. A server value can be nested deeper than either (any user allowed to
write can insert one over HTTP), so :func:`parse_frame` falls back to :func:`loads_iterative`,
which keeps its own stack and replaces every container nested deeper than ``max_depth`` by
:data:`TOO_DEEP`. What survives is nested at most ``max_depth`` levels, which later code
(comparisons, the store's JSON, logging) can handle; the boundary checks (``_inbound.py``)
drop the entities that held such a value.

    >>> parse_frame(b"[" * 3000 + b"]" * 3000, max_depth=2)
    [[<too deep>]]
"""

from __future__ import annotations

import re
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any, List, Tuple, Union

from ._envelope import loads

__all__ = ["TOO_DEEP", "MAX_FRAME_DEPTH", "parse_frame", "loads_iterative"]

#: Containers below this depth are replaced by TOO_DEEP by the fallback parser.
MAX_FRAME_DEPTH = 512


class _TooDeep:
    """Stands for a container that was nested too deep to keep."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<too deep>"


TOO_DEEP: Any = _TooDeep()

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_SKIP = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_LITERALS = (("true", True), ("false", False), ("null", None))


def _is_depth_error(e: BaseException) -> bool:
    # orjson: JSONDecodeError("depth limit exceeded: ..."); the stdlib: RecursionError
    text = str(e).lower()
    return isinstance(e, RecursionError) or "depth limit" in text or "recursion" in text


def parse_frame(data: Union[str, bytes], max_depth: int = MAX_FRAME_DEPTH) -> Any:
    """JSON of one frame: the fast parser, or the iterative one when that one is out of depth.
    Raises ValueError for invalid JSON."""
    try:
        return loads(data)
    except (RecursionError, ValueError) as e:
        if not _is_depth_error(e):
            raise
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    return loads_iterative(text, max_depth)


def _skip_container(s: str, pos: int) -> int:
    """The end of the container opening at ``pos`` (strings skipped, brackets counted)."""
    depth = 0
    for m in _SKIP.finditer(s, pos):
        tok = m.group()
        if tok in "[{":
            depth += 1
        elif tok in "]}":
            depth -= 1
            if depth == 0:
                return m.end()
    raise ValueError("unterminated container")


def loads_iterative(s: str, max_depth: int = MAX_FRAME_DEPTH) -> Any:
    """Parse JSON text with an explicit stack; containers deeper than ``max_depth`` become
    :data:`TOO_DEEP`. Raises ValueError for invalid JSON."""
    stack: List[Tuple[Any, Any]] = []  # (container, pending key of a dict)
    n = len(s)
    pos = _WS.match(s, 0).end()  # type: ignore[union-attr]
    while True:
        # -- one value at pos
        if pos >= n:
            raise ValueError(f"unexpected end of JSON at {pos}")
        c = s[pos]
        value: Any
        if c == "{" or c == "[":
            if len(stack) >= max_depth:
                value, pos = TOO_DEEP, _skip_container(s, pos)
            else:
                container: Any = {} if c == "{" else []
                pos = _WS.match(s, pos + 1).end()  # type: ignore[union-attr]
                close = "}" if c == "{" else "]"
                if pos < n and s[pos] == close:
                    value, pos = container, pos + 1
                else:
                    key = None
                    if c == "{":
                        key, pos = _key(s, pos)
                    stack.append((container, key))
                    continue
        elif c == '"':
            value, pos = scanstring(s, pos + 1)
        else:
            m = _NUMBER.match(s, pos)
            if m is not None and m.end() > pos:
                text = m.group()
                value = float(text) if m.group(1) or m.group(2) else int(text)
                pos = m.end()
            else:
                for word, literal in _LITERALS:
                    if s.startswith(word, pos):
                        value, pos = literal, pos + len(word)
                        break
                else:
                    raise ValueError(f"unexpected character {c!r} at {pos}")
        # -- attach it, closing every container that ends here
        while True:
            pos = _WS.match(s, pos).end()  # type: ignore[union-attr]
            if not stack:
                if pos != n:
                    raise ValueError(f"extra data at {pos}")
                return value
            container, key = stack[-1]
            if type(container) is dict:
                container[key] = value
            else:
                container.append(value)
            if pos >= n:
                raise ValueError("unexpected end of JSON")
            c = s[pos]
            if c == ",":
                pos = _WS.match(s, pos + 1).end()  # type: ignore[union-attr]
                if type(container) is dict:
                    key, pos = _key(s, pos)
                    stack[-1] = (container, key)
                break
            if c == ("}" if type(container) is dict else "]"):
                stack.pop()
                value, pos = container, pos + 1
                continue
            raise ValueError(f"expected ',' or a closing bracket at {pos}")


def _key(s: str, pos: int) -> Tuple[str, int]:
    if pos >= len(s) or s[pos] != '"':
        raise ValueError(f"expected an object key at {pos}")
    key, pos = scanstring(s, pos + 1)
    pos = _WS.match(s, pos).end()  # type: ignore[union-attr]
    if pos >= len(s) or s[pos] != ":":
        raise ValueError(f"expected ':' at {pos}")
    return key, _WS.match(s, pos + 1).end()  # type: ignore[union-attr]
