"""Writes the server rejected, kept so that the application can retry or discard them.

A rejected unit is rolled back at once (never replayed by itself: that poisons the outbox, as
the JS client's does, PROTOCOL.md §6.3), but it is not lost: it is kept in the local database's
metadata (so it survives a restart with durable storage) until the application retries or
discards it. The newest :data:`MAX_KEPT` are kept.

Runs under the engine's lock.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

from .._util.types import Changes
from ..errors import WriteError
from ..store.base import LocalStore

__all__ = ["RejectedWrite", "Rejections", "MAX_KEPT"]

META_KEY = "rejected_writes"
MAX_KEPT = 100


def _to_json(changes: Changes) -> Dict[str, Any]:
    return {coll: {"sets": dict(c["sets"]), "deletes": sorted(c["deletes"])} for coll, c in changes.items()}


def _from_json(data: Any) -> Changes:
    return {coll: {"sets": dict(c.get("sets") or {}), "deletes": set(c.get("deletes") or ())}
            for coll, c in (data or {}).items()}


class RejectedWrite:
    """One unit of writes (a transaction, merged with others that touched its entities) that
    the server rejected. It was rolled back locally; :meth:`retry` writes it again (for example
    after a permission was granted), :meth:`discard` forgets it.

        for rejected in client.rejected_writes():
            print(rejected.name, rejected.message, rejected.changes)
            outcome = rejected.retry()       # back in the outbox, as a new write
            outcome.wait(timeout=10)
    """

    def __init__(self, rid: int, name: str, status: Optional[int], message: str, changes: Changes,
                 owner: str, rejected_at: float, manager: "Rejections") -> None:
        self.id = rid
        #: the server's error name, HTTP-like status and message (as in :class:`WriteError`)
        self.name = name
        self.status = status
        self.message = message
        #: the rejected writes, encoded as on the wire: ``{collection: {"sets": {id: values}, "deletes": {ids}}}``
        self.changes = changes
        #: the identity that made them; a retry sends them only under that identity
        self.owner = owner
        #: when the rejection arrived (seconds since the epoch)
        self.rejected_at = rejected_at
        self._manager = manager

    def retry(self) -> Any:
        """Put these writes back in the outbox (as new writes, over the current local data) and
        forget the rejection; returns their :class:`WriteOutcome`. They are sent only under the
        identity that made them."""
        return self._manager.retry(self)

    def discard(self) -> None:
        """Forget this rejection (its writes stay rolled back)."""
        self._manager.discard(self.id)

    def __repr__(self) -> str:
        n = sum(len(c["sets"]) + len(set(c["deletes"]) - set(c["sets"])) for c in self.changes.values())
        return f"<RejectedWrite id={self.id} {self.name} {n} entities>"


class Rejections:
    """The kept rejections, in the store's metadata (read from the store at every call: a fork
    or a slot claim replaces the store)."""

    def __init__(self, store: Callable[[], LocalStore], lock: Any,
                 rewrite: Callable[[Changes, str], Any]) -> None:
        self._store = store
        self._lock = lock
        self._rewrite = rewrite  # puts changes back in the outbox for an owner; returns the outcome

    def _load(self) -> List[Dict[str, Any]]:
        raw = self._store().get_meta(META_KEY, [])
        return raw if isinstance(raw, list) else []

    def add(self, error: WriteError, changes: Changes, owner: str) -> None:
        entries = self._load()
        rid = max((int(e.get("id", 0)) for e in entries), default=0) + 1
        entries.append({"id": rid, "name": error.name, "status": error.status, "message": error.message,
                        "changes": _to_json(changes), "owner": owner, "at": time.time()})
        self._store().set_meta(META_KEY, entries[-MAX_KEPT:])

    def list(self) -> List[RejectedWrite]:
        with self._lock:
            entries = self._load()
        return [RejectedWrite(int(e["id"]), str(e.get("name") or "WriteError"), e.get("status"),
                              str(e.get("message") or ""), _from_json(e.get("changes")), str(e.get("owner")),
                              float(e.get("at") or 0), self) for e in entries]

    def discard(self, rid: int) -> bool:
        with self._lock:
            entries = self._load()
            kept = [e for e in entries if e.get("id") != rid]
            if len(kept) == len(entries):
                return False
            self._store().set_meta(META_KEY, kept)
            return True

    def retry(self, rejected: RejectedWrite) -> Any:
        # Not under the lock: the write sends what it can (the engine never sends under its lock).
        # Only one of two racing retries finds the entry to discard.
        if not self.discard(rejected.id):
            raise LookupError(f"rejected write {rejected.id} was already retried or discarded")
        return self._rewrite(rejected.changes, rejected.owner)

    def snapshot(self) -> List[Dict[str, Any]]:
        with self._lock:
            return self._load()

    def restore(self, entries: List[Dict[str, Any]]) -> None:
        with self._lock:
            if entries:
                self._store().set_meta(META_KEY, entries)
