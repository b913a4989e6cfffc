"""The registry of live queries: one record per distinct query, shared by its subscribers and
by fetches waiting for the server; dormant queries that keep their checkpoint after their last
user left; and re-evaluation when collections change.

:class:`QueryRegistry` is the half of :class:`~triplit_sync.sync.engine.SyncEngine` that knows
nothing of the wire: the engine adds what goes out and what comes in, through the hooks below.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set

from .._util.callbacks import wait_until
from .._util.types import Document, QueryJSON
from ..store.base import LocalStore
from ..wire.messages import query_id as compute_query_id
from ._checkpoints import Checkpoints
from ._freshness import Freshness, IdSets
from ._live import LiveQuery, QueryRunner, Subscription
from ._views import Views

__all__ = ["QueryRegistry"]

logger = logging.getLogger(__name__)


class QueryRegistry:
    """Live queries under one lock (``_lock``, with ``_cond`` for waiters)."""

    def __init__(
        self,
        store: LocalStore,
        runner: QueryRunner,
        submit: Callable[..., None],
        checkpoints: Optional[Mapping[str, Any]],
        on_checkpoints: Optional[Callable[[Dict[str, Any]], None]],
    ) -> None:
        self.store = store
        self.runner = runner
        self._submit = submit  # runs a callback on the dispatcher thread
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._queries: Dict[str, LiveQuery] = {}
        self._checkpoints = Checkpoints(checkpoints, on_checkpoints, self._lock)
        self._connection = 0  # bumps on every READY and disconnect
        self._fresh = Freshness(lambda coll, eid: store.get_cached(coll, eid) is not None)
        self._views = Views(store, runner, self._fresh, submit, self._verify, lambda: self._connection)

    # ------------------------------------------------------------------ hooks (the engine's wire side)

    def _pump(self) -> None:
        """Decide what may go out now (under the lock)."""
        raise NotImplementedError

    def _drain(self) -> None:
        """Send what :meth:`_pump` decided (without the lock)."""
        raise NotImplementedError

    def _want_remote(self, live: LiveQuery) -> None:
        """``live`` is wanted on the server: subscribe it there when the wire allows."""
        raise NotImplementedError

    def _disconnect_query(self, live: LiveQuery) -> None:
        """Nobody needs the server's answers to ``live`` any more: end its server subscription."""
        raise NotImplementedError

    def _verify(self, ids: IdSets) -> Set[str]:
        """Check these cached entities with the server (see _freshness.py); the verification ids."""
        raise NotImplementedError

    # ------------------------------------------------------------------ queries

    def subscribe(
        self,
        query: QueryJSON,
        on_results: Callable[[List[Dict[str, Any]]], Any],
        on_error: Optional[Callable[[BaseException], Any]] = None,
        *,
        local_only: bool = False,
        on_remote_fulfilled: Optional[Callable[[], Any]] = None,
        offline: bool = False,
    ) -> Subscription:
        """``offline``: no connection is coming, so the local results are all there is for now."""
        with self._lock:
            live = self._live_for(query)
            sub = Subscription(live, on_results, on_error, on_remote_fulfilled, local_only, self.unsubscribe)
            live.subscribers.append(sub)
            if not local_only and not live.remote:
                live.remote = True
                self._want_remote(live)
            # A query with a checkpoint resumes from the ids it recorded: ask the server before
            # evaluating locally, so that the local work overlaps with the server's.
            if live.id in self._checkpoints and not live.evaluated:
                self._pump()
        self._drain()
        with self._lock:
            if not live.evaluated:
                self._views.evaluate(live)
            if live.error is not None and on_error is not None:
                self._submit(on_error, live.error)
            self._pump()
        self._drain()
        with self._lock:
            # Local results right away when they mean something: the query was answered by the
            # server before (it has a checkpoint), only local results were asked for, or the
            # server cannot be asked now.
            if local_only or offline or live.fulfilled or live.id in self._checkpoints or live.rows:
                self._views.deliver(sub, live.rows)
            if live.fulfilled and not live.unsettled:
                self._views.tell_fulfilled(sub)  # answered before this subscriber came
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if not sub.active:
                return
            sub.active = False
            live = sub.live
            if sub in live.subscribers:
                live.subscribers.remove(sub)
            self._after_release(live)
            self._pump()
        self._drain()

    def hold(self, query: QueryJSON, *, until_fulfilled: bool = False) -> LiveQuery:
        """Keep a query subscribed on the server while a fetch waits for it; ``until_fulfilled``:
        the hold ends by itself once the server has answered (a background refresh)."""
        with self._lock:
            live = self._live_for(query)
            live.holds += 1
            if until_fulfilled:
                live.auto_holds += 1
            if not live.remote:
                live.remote = True
                self._want_remote(live)
            self._pump()
        self._drain()
        if until_fulfilled:
            with self._lock:
                if live.fulfilled or live.error is not None:
                    self._release_auto(live)
                    self._pump()
            self._drain()
        return live

    def release(self, live: LiveQuery) -> None:
        with self._lock:
            live.holds -= 1
            self._after_release(live)
            self._pump()
        self._drain()

    def _release_auto(self, live: LiveQuery) -> None:
        """The server answered (or refused) ``live``: background refreshes are done with it."""
        if not live.auto_holds:
            return
        while live.auto_holds:
            live.auto_holds -= 1
            live.holds -= 1
        self._after_release(live)

    def _after_release(self, live: LiveQuery) -> None:
        """A user of ``live`` left: drop the query, or end its server subscription if nobody
        needs the server's answers any more (under the lock, so that a new user arriving at
        the same time sees a consistent query)."""
        if live.idle:
            self._drop(live)
        elif live.holds == 0 and not any(not s.local_only for s in live.subscribers):
            live.remote = False
            self._disconnect_query(live)

    def wait_fulfilled(self, live: LiveQuery, timeout: Optional[float]) -> bool:
        """Wait until the server answered (True), the query failed (raises) or time ran out (False)."""
        def answered() -> bool:
            if live.error is not None:
                raise live.error
            return live.fulfilled and not live.unsettled

        with self._cond:
            return wait_until(self._cond, answered, timeout)

    def has_checkpoint(self, query: QueryJSON) -> bool:
        """Whether the server has answered this query here (it is live and fulfilled, or it has
        a checkpoint from an earlier subscription or fetch, in this process or an earlier one)."""
        qid = compute_query_id(query)
        with self._lock:
            live = self._queries.get(qid)
            self._checkpoints.touch(qid)
            return qid in self._checkpoints or (live is not None and live.fulfilled)

    def is_fulfilled(self, query: QueryJSON) -> bool:
        """Whether this query is live and answered on the current connection."""
        with self._lock:
            live = self._queries.get(compute_query_id(query))
            return live is not None and live.fulfilled and not live.unsettled

    def run_local(self, query: QueryJSON) -> List[Document]:
        with self._lock:
            return self.runner.run(query)[0]

    def _live_for(self, query: QueryJSON) -> LiveQuery:
        qid = compute_query_id(query)
        live = self._queries.get(qid)
        if live is None:
            live = LiveQuery(qid, query, self.runner.collections(query))
            self._queries[qid] = live
            self._checkpoints.wake(qid)
        return live

    def _drop(self, live: LiveQuery) -> None:
        """The last user is gone: end the server subscription.

        A query the server answered keeps its checkpoint and its cached results, dormant: a
        later local-first fetch answers from them and a later subscription resumes from the
        checkpoint (PROTOCOL.md §5.5). Only the :data:`~._checkpoints.MAX_DORMANT_QUERIES` most recently used
        stay; older ones are forgotten (see :meth:`_forget`).
        """
        self._disconnect_query(live)
        live.remote = False
        if self._queries.get(live.id) is not live:
            return
        del self._queries[live.id]
        for qid in self._checkpoints.park(live.id):
            self._forget(qid)

    def _forget(self, qid: str) -> None:
        """Drop a query's checkpoint and recorded result ids.

        Its cached entities stay: evicting them would take this client's own writes out of
        every later local read. What stays is only as fresh as the server last sent it; an
        entity no live query holds is checked with the server before a live query shows it
        (_freshness.py), and a resume lists it only with the checkpoint that vouched for it.
        """
        self.store.drop_query(qid)
        self._checkpoints.discard(qid)

    def _settle_all(self) -> None:
        for live in self._queries.values():
            if live.unsettled:
                self._views.settle(live)

    def _refresh_collections(self, changed: Iterable[str], ids: Optional[IdSets] = None) -> None:
        """Re-evaluate the queries on ``changed``; with ``ids`` (exactly the entities whose local
        view changed) only those the change can affect."""
        changed = set(changed)
        if not changed:
            return
        for live in list(self._queries.values()):
            if live.collections & changed and (live.subscribers or live.evaluated):
                if ids is not None and self._unaffected(live, ids):
                    continue
                try:
                    self._views.refresh(live)
                except Exception as e:  # one query's local evaluation must not undo a write or an ack
                    logger.error("could not evaluate query %s locally: %s: %s", live.id, type(e).__name__, e,
                                 exc_info=True)
                    for sub in list(live.subscribers):
                        if sub.on_error is not None:
                            self._submit(sub.on_error, e)

    def _unaffected(self, live: LiveQuery, ids: IdSets) -> bool:
        # Skipping is what an evaluation with unchanged results does, once every subscriber
        # has had its first delivery.
        return (live.evaluated and all(sub.delivered is not None for sub in live.subscribers)
                and self.runner.unaffected(live.query, live.deps, ids))

    def checkpoints(self) -> Dict[str, Any]:
        with self._lock:
            return self._checkpoints.snapshot()

    def reset_checkpoints(self) -> None:
        """Forget resume state (a new identity or an emptied database)."""
        with self._lock:
            for qid in self._checkpoints.clear():
                self.store.drop_query(qid)
            self.store.forget_written()
        self.flush_checkpoints()

    def flush_checkpoints(self) -> None:
        """Persist the checkpoints now, if they changed (after the store committed)."""
        self._checkpoints.flush()
