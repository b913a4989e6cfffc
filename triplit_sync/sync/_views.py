"""How live queries are evaluated and delivered: a query re-run over the store, what its results
make the engine track (freshness, resume ids), and the rows handed to its subscribers on the
callback thread, decoded once per change.

Called by the engine under its lock; knows nothing of the wire.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from .._util.types import Document
from ..store.base import LocalStore
from ._freshness import Freshness, IdSets
from ._live import BACKGROUND, LiveQuery, QueryRunner, Subscription, call_if_active, call_if_active_remote

__all__ = ["Views"]


class Views:
    """Evaluation and delivery for one engine: ``submit(callback, *args)`` runs a callback on the
    dispatcher thread, ``verify(ids)`` starts verifications of cached entities, ``connection()``
    is the engine's current connection number."""

    def __init__(self, store: LocalStore, runner: QueryRunner, fresh: Freshness, submit: Callable[..., None],
                 verify: Callable[[IdSets], Set[str]], connection: Callable[[], int]) -> None:
        self.store, self.runner, self._fresh = store, runner, fresh
        self._submit, self._verify, self._connection = submit, verify, connection

    def evaluate(self, live: LiveQuery, first_answer: bool = False) -> bool:
        """Re-run a query locally and update what depends on its results; True when they changed."""
        changed, old = self.run(live)
        self.bookkeep(live, old, changed, first_answer)
        return changed

    def run(self, live: LiveQuery) -> Tuple[bool, IdSets]:
        rows, deps = self.runner.run(live.query)
        changed = not live.evaluated or rows != live.rows
        old = live.deps
        live.rows, live.deps, live.evaluated = rows, deps, True
        return changed, old

    def bookkeep(self, live: LiveQuery, old: IdSets, changed: bool, first_answer: bool) -> None:
        """What the server holds for this query, and its resume ids, after an evaluation."""
        if live.counted:
            self._verify(self._fresh.track(old, live.deps))
        elif first_answer:
            self.count(live)
        if (changed or first_answer) and live.fulfilled:
            self.update_ids(live)

    def count(self, live: LiveQuery) -> None:
        """The server just answered ``live``: its results are held (and fresh) from now on."""
        if not live.counted:
            live.counted = True
            self._verify(self._fresh.track({}, live.deps, live.listed))

    def uncount(self, live: LiveQuery) -> None:
        if live.counted:
            live.counted = False
            self._fresh.track(live.deps, {})

    def update_ids(self, live: LiveQuery) -> None:
        new = self._fresh.without_unverified(live.deps)  # not known fresh yet: never vouched for
        old = self.store.query_ids(live.id)
        added = {c: ids - old.get(c, set()) for c, ids in new.items()}
        removed = {c: ids - new.get(c, set()) for c, ids in old.items()}
        added = {c: s for c, s in added.items() if s}
        removed = {c: s for c, s in removed.items() if s}
        if added or removed:
            self.store.update_query_ids(live.id, added, removed)

    def refresh(self, live: LiveQuery, *, remote_first: bool = False) -> None:
        changed, old = self.run(live)
        decoded: Optional[List[Dict[str, Any]]] = None
        for sub in list(live.subscribers):
            if sub.on_results is BACKGROUND:
                continue
            if (changed or sub.delivered is None) and sub.delivered is not live.rows:
                if decoded is None:
                    decoded = self.decoded(live)
                sub.delivered = live.rows
                self._submit(call_if_active, sub, [dict(row) for row in decoded])
        # After the callbacks are on their way: on a large first answer this bookkeeping
        # takes as long as decoding the rows, and nothing the callbacks see depends on it.
        self.bookkeep(live, old, changed, remote_first)
        if remote_first:
            live.unsettled = True
            self.settle(live)

    def settle(self, live: LiveQuery) -> None:
        """A first answer counts as fulfilled (fetch waits end, ``on_remote_fulfilled``) only
        once no cached entity in its results awaits a verification: until then the results may
        still show an entity the server deleted."""
        if not live.unsettled or not live.fulfilled:
            return
        unverified = self._fresh.unverified
        if any(live.deps.get(c, ()) and live.deps[c] & ids for c, ids in unverified.items() if ids):
            return
        live.unsettled = False
        for sub in list(live.subscribers):
            self.tell_fulfilled(sub)

    def tell_fulfilled(self, sub: Subscription) -> None:
        """``on_remote_fulfilled``, once per subscriber and connection."""
        if sub.on_remote_fulfilled is not None and sub.fulfilled_on != self._connection():
            sub.fulfilled_on = self._connection()
            self._submit(call_if_active_remote, sub)

    def deliver(self, sub: Subscription, rows: List[Document]) -> None:
        if sub.delivered is not None or sub.on_results is BACKGROUND:
            return  # the server's answer (or a change) reached it first
        sub.delivered = rows
        decoded = self.decoded(sub.live) if rows is sub.live.rows else self.runner.decode(sub.live.query, rows)
        self._submit(call_if_active, sub, [dict(row) for row in decoded])

    def decoded(self, live: LiveQuery) -> List[Dict[str, Any]]:
        """``live.rows`` decoded, reusing the decoded form of rows that did not change.

        A change to a few entities of a large live query then costs a few decodes, not one per
        row. Each delivery gets its own top-level dicts (``dict(row)``), so a callback that
        edits its rows cannot touch what later deliveries hand out.
        """
        rows, previous = live.rows, live.decoded
        if previous is not None and previous[0] is rows:
            return previous[1]
        decode = self.runner.decoder(live.query)
        if previous is None:
            decoded = [decode(row) for row in rows]
        else:
            # id() is safe here: the previous rows are alive until this returns.
            known = {id(row): dec for row, dec in zip(*previous)}
            decoded = [known.get(id(row)) or decode(row) for row in rows]
        live.decoded = (rows, decoded)
        return decoded
