"""The engine's side of "my writes": outcomes of particular writes, per-entity sync listeners,
sync-state watchers and the kept rejections (see _outcomes.py and _rejected.py).

The engine owns one :class:`OwnWrites` (``engine.own``) and gives it what it reaches: the store,
the engine's lock, the callback submitter, the write pipeline and the engine's ``write`` (to
send a rejected write again).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Set, Tuple

from .._util.types import Changes
from ..errors import WriteError
from ..store.base import LocalStore
from ._outcomes import WriteOutcome, changed_keys
from ._pipeline import WritePipeline
from ._rejected import Rejections

__all__ = ["OwnWrites"]

Key = Tuple[str, str]


class OwnWrites:
    """Outcomes, per-entity listeners, sync-state watchers and kept rejections of one engine."""

    def __init__(self, store: LocalStore, lock: threading.RLock, submit: Callable[..., None],
                 pipeline: WritePipeline, write: Callable[..., Optional[WriteOutcome]]) -> None:
        self.store, self._lock, self._submit, self.pipeline, self._write = store, lock, submit, pipeline, write
        self.rejections = Rejections(lambda: self.store, lock, self._rewrite)
        pipeline.on_rejected = self.rejections.add

    def _rewrite(self, changes: Changes, owner: str) -> Optional[WriteOutcome]:
        return self._write(changes, owner=owner, track=True)

    def after_write(self, changes: Changes, track: bool, timeout: Optional[float]) -> Optional[WriteOutcome]:
        """Under the lock, right after ``changes`` entered the outbox."""
        tracker = self.pipeline.outcomes
        outcome: Optional[WriteOutcome] = None
        keys = changed_keys(changes)
        if track:
            outcome = WriteOutcome(keys, self._submit, timeout, cond=tracker.cond)
            tracker.track(outcome, keys)
        if any(c["deletes"] for c in changes.values()):
            # a delete may have cancelled an earlier write to its entity (a pending insert,
            # which then never reaches the server)
            tracker.sweep(self.store.has_outbox_entry, keys)
        if tracker.watchers:
            tracker.notify(keys)
        return outcome

    def settled_outcome(self, timeout: Optional[float], status: str = "synced") -> WriteOutcome:
        """The outcome of no writes at all: a transaction that wrote nothing (``"synced"``) or
        whose block raised (``"dropped"``)."""
        return WriteOutcome((), self._submit, timeout, (status, None), cond=self.pipeline.outcomes.cond)

    def outbox_shrank(self) -> None:
        """Writes left the outbox unsent (cleared): their outcomes are dropped."""
        tracker = self.pipeline.outcomes
        if tracker:
            tracker.sweep(self.store.has_outbox_entry)

    def entity_outcome(self, collection: str, entity_id: str, timeout: Optional[float]) -> WriteOutcome:
        """The outcome of the writes to one entity that await the server now."""
        key = (collection, entity_id)
        with self._lock:
            store = self.store
            inflight = store.inflight() if store.inflight_owner() is not None else None
            in_flight = inflight is not None and _has(inflight[1], key)
            # (copying the pending writes only when the in-flight batch alone cannot tell)
            pending = store.has_outbox_entry(*key) and (not in_flight or any(
                not entry.inflight and _has(entry.changes, key) for entry in store.pending_changes()))
            tracker = self.pipeline.outcomes
            outcome = WriteOutcome([key], self._submit, timeout,
                                   None if pending or in_flight else tracker.last(key), cond=tracker.cond)
            if pending:
                self.pipeline.outcomes.track(outcome, [key])
            elif in_flight:
                self.pipeline.outcomes.track(outcome, [], [key])
            return outcome

    def on_entity_sync(self, collection: str, entity_id: str, on_success: Optional[Callable[[], Any]],
                       on_error: Optional[Callable[[WriteError], Any]]) -> Callable[[], None]:
        with self._lock:
            remove = self.pipeline.outcomes.listen((collection, entity_id), on_success, on_error)

        def unlisten() -> None:
            with self._lock:
                remove()
        return unlisten

    def watch_sync_state(self, callback: Callable[[Set[Key]], None]) -> Callable[[], None]:
        """``callback(keys)`` on the callback thread whenever the sync state of these entities
        may have changed (a write stored, sent, acknowledged, rejected or dropped)."""

        def hand_on(keys: Set[Key]) -> None:
            self._submit(callback, set(keys))

        with self._lock:
            self.pipeline.outcomes.watchers.append(hand_on)

        def remove() -> None:
            with self._lock:
                if hand_on in self.pipeline.outcomes.watchers:
                    self.pipeline.outcomes.watchers.remove(hand_on)
        return remove


def _has(changes: Changes, key: Key) -> bool:
    c = changes.get(key[0])
    return c is not None and (key[1] in c["sets"] or key[1] in c["deletes"])
