"""The engine's side of "my writes": outcomes of particular writes, per-entity sync listeners,
sync-state watchers and the kept rejections (see _outcomes.py and _rejected.py).

A mixin of :class:`~triplit_sync.sync.engine.SyncEngine`, under its lock; it reaches the write
pipeline (``self.pipeline``) and the store only.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Set, Tuple

from .._util.types import Changes
from ..errors import WriteError
from ._outcomes import WriteOutcome, changed_keys
from ._rejected import Rejections

__all__ = ["OwnWrites"]

Key = Tuple[str, str]


class OwnWrites:
    """Needs ``_lock``, ``store``, ``pipeline`` and ``_submit`` of the engine."""

    def _init_own_writes(self) -> None:
        engine: Any = self
        self.rejections = Rejections(lambda: engine.store, engine._lock, self._rewrite)
        engine.pipeline.on_rejected = self.rejections.add

    def _rewrite(self, changes: Changes, owner: str) -> Optional[WriteOutcome]:
        engine: Any = self
        return engine.write(changes, owner=owner, track=True)  # type: ignore[no-any-return]

    def _after_write(self, changes: Changes, track: bool, timeout: Optional[float]) -> Optional[WriteOutcome]:
        """Under the lock, right after ``changes`` entered the outbox."""
        engine: Any = self
        tracker = engine.pipeline.outcomes
        outcome: Optional[WriteOutcome] = None
        keys = changed_keys(changes)
        if track:
            outcome = WriteOutcome(keys, engine._submit, timeout, cond=tracker.cond)
            tracker.track(outcome, keys)
        if any(c["deletes"] for c in changes.values()):
            # a delete may have cancelled an earlier write to its entity (a pending insert,
            # which then never reaches the server)
            tracker.sweep(engine.store.has_outbox_entry, keys)
        if tracker.watchers:
            tracker.notify(keys)
        return outcome

    def settled_outcome(self, timeout: Optional[float], status: str = "synced") -> WriteOutcome:
        """The outcome of no writes at all: a transaction that wrote nothing (``"synced"``) or
        whose block raised (``"dropped"``)."""
        engine: Any = self
        return WriteOutcome((), engine._submit, timeout, (status, None), cond=engine.pipeline.outcomes.cond)

    def _outbox_shrank(self) -> None:
        """Writes left the outbox unsent (cleared): their outcomes are dropped."""
        engine: Any = self
        tracker = engine.pipeline.outcomes
        if tracker:
            tracker.sweep(engine.store.has_outbox_entry)

    def entity_outcome(self, collection: str, entity_id: str, timeout: Optional[float]) -> WriteOutcome:
        """The outcome of the writes to one entity that await the server now."""
        engine: Any = self
        key = (collection, entity_id)
        with engine._lock:
            store = engine.store
            inflight = store.inflight() if store.inflight_owner() is not None else None
            in_flight = inflight is not None and _has(inflight[1], key)
            # (copying the pending writes only when the in-flight batch alone cannot tell)
            pending = store.has_outbox_entry(*key) and (not in_flight or any(
                not entry.inflight and _has(entry.changes, key) for entry in store.pending_changes()))
            tracker = engine.pipeline.outcomes
            outcome = WriteOutcome([key], engine._submit, timeout,
                                   None if pending or in_flight else tracker.last(key), cond=tracker.cond)
            if pending:
                engine.pipeline.outcomes.track(outcome, [key])
            elif in_flight:
                engine.pipeline.outcomes.track(outcome, [], [key])
            return outcome

    def on_entity_sync(self, collection: str, entity_id: str, on_success: Optional[Callable[[], Any]],
                       on_error: Optional[Callable[[WriteError], Any]]) -> Callable[[], None]:
        engine: Any = self
        with engine._lock:
            remove = engine.pipeline.outcomes.listen((collection, entity_id), on_success, on_error)

        def unlisten() -> None:
            with engine._lock:
                remove()
        return unlisten

    def watch_sync_state(self, callback: Callable[[Set[Key]], None]) -> Callable[[], None]:
        """``callback(keys)`` on the callback thread whenever the sync state of these entities
        may have changed (a write stored, sent, acknowledged, rejected or dropped)."""
        engine: Any = self

        def hand_on(keys: Set[Key]) -> None:
            engine._submit(callback, set(keys))

        with engine._lock:
            engine.pipeline.outcomes.watchers.append(hand_on)

        def remove() -> None:
            with engine._lock:
                if hand_on in engine.pipeline.outcomes.watchers:
                    engine.pipeline.outcomes.watchers.remove(hand_on)
        return remove


def _has(changes: Changes, key: Key) -> bool:
    c = changes.get(key[0])
    return c is not None and (key[1] in c["sets"] or key[1] in c["deletes"])
