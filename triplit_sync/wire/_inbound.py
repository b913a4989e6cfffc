"""Shape checks on what the server sends, before any of it reaches the store.

An entity that cannot be stored safely is dropped from its frame and named in the returned
problems; the rest of the frame applies. Reasons: an id that is not a non-empty string (``""``
would poison every later local write), a document that is not an object or whose ``id`` differs
from its key, a value nested deeper than :data:`MAX_VALUE_DEPTH` levels (comparing or storing
it would recurse past the interpreter's limit). The caller decides how to report them.

    >>> changes = {"todos": {"sets": {"t1": {"id": "t2"}}, "deletes": {""}}}
    >>> clean, problems = sanitize_changes(changes)
    >>> clean, len(problems)
    ({'todos': {'sets': {}, 'deletes': set()}}, 2)
"""

from __future__ import annotations

from typing import Any, List, Tuple

from .._util.redact import redact
from .._util.types import Changes

__all__ = ["MAX_VALUE_DEPTH", "sanitize_changes", "too_deep"]

#: Nesting levels allowed inside one attribute value of a server document.
MAX_VALUE_DEPTH = 128

_NESTED = (dict, list)

#: At most this many problems are described per frame (the count is always exact).
_MAX_DESCRIBED = 20


def too_deep(value: Any, limit: int = MAX_VALUE_DEPTH) -> bool:
    """True when ``value`` nests containers more than ``limit`` levels (checked without recursion)."""
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        v, depth = pop()
        if depth > limit:
            return True
        for child in (v.values() if type(v) is dict else v):
            t = type(child)
            if (t is dict or t is list) and child:
                push((child, depth + 1))
    return False


def _nests(value: Any) -> bool:
    """True when ``value`` (a dict or list) holds a non-empty container: most values don't,
    and this is cheaper than walking them."""
    for child in (value.values() if type(value) is dict else value):
        if type(child) in _NESTED and child:
            return True
    return False


def _bad_doc(eid: Any, doc: Any) -> str:
    if type(eid) is not str or not eid:
        return "an entity id must be a non-empty string"
    if type(doc) is not dict:
        return f"the document is a {type(doc).__name__}, not an object"
    if doc.get("id") != eid:
        return f"the document's id {redact(repr(doc.get('id')), 60)} differs from its key"
    for v in doc.values():
        t = type(v)
        if (t is dict or t is list) and v and too_deep(v):
            return f"a value is nested more than {MAX_VALUE_DEPTH} levels deep"
    return ""


def sanitize_changes(changes: Changes) -> Tuple[Changes, List[str]]:
    """Drop (in place) the entities of decoded server ``changes`` that must not be stored;
    return the changes and one description per dropped entity or collection."""
    problems: List[str] = []

    def note(text: str) -> None:
        if len(problems) < _MAX_DESCRIBED:
            problems.append(text)
        else:
            problems.append("")  # counted, not described

    for coll in list(changes):
        if type(coll) is not str or not coll:
            note(f"collection name {redact(repr(coll), 60)}: must be a non-empty string")
            del changes[coll]
            continue
        c = changes[coll]
        sets = c["sets"]
        bad = []
        for eid, doc in sets.items():  # the hot path: every entity of every frame passes here
            if type(doc) is not dict or type(eid) is not str or not eid or doc.get("id") != eid:
                bad.append(eid)
                continue
            for v in doc.values():
                if type(v) in _NESTED and v and _nests(v) and too_deep(v):
                    bad.append(eid)
                    break
        for eid in bad:
            note(f"{coll}/{redact(repr(eid), 80)}: {_bad_doc(eid, sets[eid])}")
            del sets[eid]
        deletes = c["deletes"]
        bad_deletes = [eid for eid in deletes if type(eid) is not str or not eid]
        for eid in bad_deletes:
            note(f"{coll}: deleted id {redact(repr(eid), 80)} is not a non-empty string")
            deletes.discard(eid)
    return changes, problems
