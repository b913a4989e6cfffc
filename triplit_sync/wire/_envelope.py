"""JSON for the wire (the one shim, ``_util/json.py``) and the SuperJSON envelope of
``changes`` (PROTOCOL.md §3.1).

    >>> encode_changes({"todos": {"sets": {"t1": {"id": "t1"}}, "deletes": set()}})["meta"]
    {'values': {'todos.sets': ['map'], 'todos.deletes': ['set']}, 'v': 1}
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping

from .._util.jsonio import dumps, loads
from .._util.types import Changes
from ..errors import ProtocolError

__all__ = ["loads", "dumps_bytes", "encode_changes", "decode_changes"]


def dumps_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON for a frame."""
    return dumps(obj)


def _escape_path_segment(key: str) -> str:
    # superjson 2.x (meta "v": 1) escapes backslashes as well as dots in path segments.
    if "\\" in key or "." in key:
        return key.replace("\\", "\\\\").replace(".", "\\.")
    return key


def encode_changes(changes: Mapping[str, Mapping[str, Any]]) -> Dict[str, Any]:
    """The SuperJSON ``{json, meta}`` form of in-memory changes (see ``_types.Changes``).

    Every collection gets its ``map``/``set`` markers and ``meta.v`` is 1, so the server turns
    ``sets`` back into a Map and ``deletes`` into a Set. Raises ``TypeError``/``ValueError``
    naming the collection when the input does not have the documented shape.
    """
    if not isinstance(changes, Mapping):
        raise TypeError(
            f"changes must be a mapping of collection name to changes, not {type(changes).__name__}"
        )
    body: Dict[str, Any] = {}
    values: Dict[str, List[str]] = {}
    for coll, c in changes.items():
        if not isinstance(coll, str) or not coll:
            raise ValueError(f"changes: collection name must be a non-empty string, got {coll!r}")
        if not isinstance(c, Mapping):
            raise TypeError(
                f"changes[{coll!r}] must be a mapping with 'sets' and 'deletes', not {type(c).__name__}"
            )
        sets = c.get("sets") or {}
        deletes = c.get("deletes") or ()
        if not isinstance(sets, Mapping):
            raise TypeError(
                f"changes[{coll!r}]['sets'] must map entity id to document, not {type(sets).__name__}"
            )
        if isinstance(deletes, (str, bytes)) or not isinstance(deletes, Iterable):
            raise TypeError(
                f"changes[{coll!r}]['deletes'] must be a set of entity ids, not {type(deletes).__name__}"
            )
        delete_list = list(deletes)
        for i in delete_list:
            if not isinstance(i, str):
                raise TypeError(f"changes[{coll!r}]['deletes'] holds a non-string id {i!r}")
        for i in sets:
            if not isinstance(i, str):
                raise TypeError(f"changes[{coll!r}]['sets'] holds a non-string id {i!r}")
        # Tuples serialize as JSON arrays; list(items()) avoids building one list per entity.
        body[coll] = {"sets": list(sets.items()), "deletes": sorted(delete_list)}
        key = _escape_path_segment(coll)
        values[key + ".sets"] = ["map"]
        values[key + ".deletes"] = ["set"]
    return {"json": body, "meta": {"values": values, "v": 1}}


def decode_changes(envelope: Any, *, frame_type: str = "CHANGES") -> Changes:
    """In-memory changes from a SuperJSON ``{json, meta}`` envelope.

    ``sets`` become ``{id: document}`` dicts (the decoded JSON objects themselves, not copies)
    and ``deletes`` become sets. Nested value annotations in ``meta`` (``["map", {...}]``) are
    accepted and ignored: entity values on the wire are already encoded. Raises
    :class:`ProtocolError` naming ``frame_type`` and the collection on a malformed envelope.
    """
    if not isinstance(envelope, dict):
        raise ProtocolError(f"{frame_type} frame: changes must be an object, got {type(envelope).__name__}")
    body = envelope.get("json")
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ProtocolError(f"{frame_type} frame: changes.json must be an object, got {type(body).__name__}")
    meta = envelope.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise ProtocolError(f"{frame_type} frame: changes.meta must be an object, got {type(meta).__name__}")
    out: Changes = {}
    for coll, c in body.items():
        if not isinstance(c, dict):
            raise ProtocolError(f"{frame_type} frame: changes for collection {coll!r} must be an object")
        sets = c.get("sets")
        deletes = c.get("deletes")
        try:
            if sets is None:
                set_map: Dict[str, Any] = {}
            elif type(sets) is list:
                set_map = dict(sets)  # [[id, doc], ...] -> {id: doc} at C speed
            elif type(sets) is dict:
                set_map = sets
            else:
                raise TypeError(type(sets).__name__)
        except (TypeError, ValueError) as e:
            raise ProtocolError(
                f"{frame_type} frame: sets of collection {coll!r} must be a list of [id, document] pairs"
                f" ({e})"
            ) from None
        try:
            delete_set = set() if deletes is None else set(deletes) if type(deletes) is list else None
        except TypeError:
            delete_set = None
        if delete_set is None:
            raise ProtocolError(f"{frame_type} frame: deletes of collection {coll!r} must be a list of ids")
        out[coll] = {"sets": set_map, "deletes": delete_set}
    return out
