"""Pure helpers on documents and change sets: JSON coding, deep merge, input checks.

No state and no locking here; :mod:`.base` builds the store on top of these.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Set

from .._util.jsonio import dumps, loads
from .._util.types import Changes, Timestamp

__all__ = [
    "deep_merge", "dumps", "loads", "check_changes", "check_doc", "check_ids", "check_owner",
    "check_timestamp", "check_id_map", "copy_doc", "copy_changes", "changes_empty",
]


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> Dict[str, Any]:
    """Return ``base`` with ``patch`` merged in, as the server merges a set (PROTOCOL.md §3.3).

    Objects merge key by key, arrays and scalars replace, ``None`` (null) overwrites. Neither
    argument is modified and unchanged sub-objects are shared, so stored documents can be handed
    out without copies as long as nobody mutates them.

    >>> deep_merge({"a": {"x": 1, "y": 2}, "b": [1]}, {"a": {"y": None}, "b": [2]})
    {'a': {'x': 1, 'y': None}, 'b': [2]}
    """
    out = dict(base)
    for key, value in patch.items():
        if type(value) is dict:
            old = out.get(key)
            if type(old) is dict:
                out[key] = deep_merge(old, value)
                continue
        out[key] = value
    return out


def _kind(value: Any) -> str:
    return type(value).__name__


def check_changes(changes: Any, what: str) -> None:
    """Raise TypeError/ValueError unless ``changes`` has the shape of ``_types.Changes``.

    Checks the containers only, not every document: the per-document check happens where each
    document is touched anyway.
    """
    if not isinstance(changes, Mapping):
        raise TypeError(f"{what}: changes must be a mapping of collection -> {{'sets', 'deletes'}}, "
                        f"got {_kind(changes)}")
    for coll, c in changes.items():
        if not isinstance(coll, str) or not coll:
            raise ValueError(f"{what}: collection name must be a non-empty string, got {coll!r}")
        if not isinstance(c, Mapping):
            raise TypeError(f"{what}: changes[{coll!r}] must be a mapping with 'sets' and 'deletes', "
                            f"got {_kind(c)}")
        extra = set(c) - {"sets", "deletes"}
        if extra:
            raise ValueError(f"{what}: changes[{coll!r}] has unknown keys {sorted(map(str, extra))!r}")
        sets = c.get("sets")
        if sets is not None and not isinstance(sets, Mapping):
            raise TypeError(f"{what}: changes[{coll!r}]['sets'] must be a mapping of id -> document, "
                            f"got {_kind(sets)}")
        deletes = c.get("deletes")
        if deletes is not None and (
            isinstance(deletes, (str, bytes, Mapping)) or not isinstance(deletes, Iterable)
        ):
            raise TypeError(f"{what}: changes[{coll!r}]['deletes'] must be a set or list of ids, "
                            f"got {deletes!r}")


def check_doc(collection: str, entity_id: Any, doc: Any, what: str) -> None:
    if not isinstance(entity_id, str) or not entity_id:
        raise ValueError(f"{what}: entity id in {collection!r} must be a non-empty string, got {entity_id!r}")
    if type(doc) is not dict:
        raise TypeError(f"{what}: document {collection}/{entity_id} must be a dict, "
                        f"got {_kind(doc)}: {doc!r:.200}")


def check_ids(collection: str, ids: Iterable[Any], what: str) -> Set[str]:
    out = set(ids)
    for eid in out:
        if not isinstance(eid, str) or not eid:
            raise ValueError(f"{what}: deleted id in {collection!r} must be a non-empty string, got {eid!r}")
    return out


def copy_doc(collection: str, entity_id: str, doc: Dict[str, Any], what: str) -> Dict[str, Any]:
    """A deep copy through JSON: also proves the document is JSON (the outbox is persisted as JSON)."""
    try:
        copied = loads(dumps(doc))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{what}: document {collection}/{entity_id} is not JSON-serializable: {exc}"
        ) from None
    return copied  # type: ignore[no-any-return]


def copy_changes(changes: Changes) -> Changes:
    """Fresh containers (documents shared): what callers get so they can't disturb the store's state."""
    return {
        coll: {"sets": dict(c["sets"]), "deletes": set(c["deletes"])}
        for coll, c in changes.items()
    }


def changes_empty(changes: Mapping[str, Any]) -> bool:
    return all(not c["sets"] and not c["deletes"] for c in changes.values())


def check_owner(owner: Any) -> str:
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"owner must be a non-empty string (an identity key), got {owner!r}")
    return owner


def check_timestamp(timestamp: Any) -> Timestamp:
    if not isinstance(timestamp, (list, tuple)) or len(timestamp) != 3:
        raise ValueError(f"timestamp must be a [ms, counter, 'server'] triple, got {timestamp!r}")
    return list(timestamp)


def check_id_map(arg: str, value: Any) -> Dict[str, Set[str]]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{arg} must be a mapping of collection -> set of ids, got {type(value).__name__}")
    out: Dict[str, Set[str]] = {}
    for coll, ids in value.items():
        if not isinstance(coll, str) or not coll:
            raise ValueError(f"{arg}: collection name must be a non-empty string, got {coll!r}")
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise TypeError(f"{arg}[{coll!r}] must be a set or list of ids, got {ids!r}")
        out[coll] = check_ids(coll, ids, arg)
    return out
