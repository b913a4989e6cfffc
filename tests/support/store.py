"""Shared helpers for the store tests (not a test module)."""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, Optional

from triplit_sync.store import LocalStore, MemoryStore, SqliteStore


def ch(coll: str, sets: Optional[Dict[str, Any]] = None, deletes: Iterable[str] = ()) -> Dict[str, Any]:
    """One collection's changes in the shape of triplit_sync._util.types.Changes."""
    return {coll: {"sets": dict(sets or {}), "deletes": set(deletes)}}


def ts(n: int) -> list:
    return [1_800_000_000_000 + n, 0, "server"]


class Harness:
    """Opens a store of one kind; ``reopen()`` closes and reopens a sqlite store (a no-op for memory)."""

    def __init__(self, kind: str, path: Any) -> None:
        self.kind = kind
        self.path = path
        self.store: LocalStore = self._open()

    def _open(self) -> LocalStore:
        return MemoryStore() if self.kind == "memory" else SqliteStore(self.path)

    def reopen(self) -> LocalStore:
        if self.kind == "sqlite":
            self.store.close()
            self.store = self._open()
        return self.store

    def close(self) -> None:
        self.store.close()


# --- an independent model of how the server applies a batch (PROTOCOL.md §3.3) ---------------

def model_merge(old: Any, new: Any) -> Any:
    if isinstance(new, dict) and isinstance(old, dict):
        out = copy.deepcopy(old)
        for k, v in new.items():
            out[k] = model_merge(out.get(k), v) if isinstance(v, dict) else copy.deepcopy(v)
        return out
    return copy.deepcopy(new)


def model_apply(state: Dict[str, Dict[str, Any]], changes: Dict[str, Any]) -> None:
    """Apply ``changes`` to ``{collection: {id: doc}}`` in place, as the server does."""
    for coll, c in changes.items():
        docs = state.setdefault(coll, {})
        for eid in c.get("deletes", ()):
            docs.pop(eid, None)
        for eid, patch in c.get("sets", {}).items():
            if eid in docs:
                docs[eid] = model_merge(docs[eid], patch)
            elif "id" in patch:
                docs[eid] = copy.deepcopy(patch)


def visible(store: LocalStore, coll: str) -> Dict[str, Any]:
    """What scan() shows, keyed by the document's id (and checked against get())."""
    out = {}
    for doc in store.scan(coll):
        assert doc["id"] not in out, f"scan returned {doc['id']} twice"
        out[doc["id"]] = doc
    for eid, doc in out.items():
        assert store.get(coll, eid) == doc
    return out


def dump(store: LocalStore) -> Dict[str, Any]:
    """Everything observable through the public API (except metadata keys, which can't be listed)."""
    colls = store.collections()
    return {
        "collections": colls,
        "visible": {c: visible(store, c) for c in colls},
        "cached": {c: {i: store.get_cached(c, i) for i in sorted(store.cached_ids(c))} for c in colls},
        "timestamps": {
            c: {i: store.entity_timestamp(c, i) for i in sorted(store.cached_ids(c))} for c in colls
        },
        "outbox": [(e.owner, e.changes, e.inflight) for e in store.pending_changes()],
        "inflight": store.inflight(),
        "queries": {q: store.query_ids(q) for q in store.query_id_list()},
    }
