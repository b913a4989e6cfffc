"""SyncEngine: joins the connection to the local database.

It keeps the registry of live queries (one server subscription per distinct query, shared by
its subscribers), applies ENTITY_DATA to the store and re-evaluates only the queries whose
collections changed, pushes the outbox one CHANGES batch at a time, and keeps a resume
checkpoint per query (PROTOCOL.md §5.5: the timestamp of the last ENTITY_DATA received while
the query was live and fulfilled, plus the ids of its results then).

Everything here runs either on a caller's thread (subscribe, write, fetch) or on the
transport's reader thread (``handle_message``); user callbacks only ever run on the
dispatcher thread. The engine knows nothing of sessions or tokens: the client tells it whose
writes may be sent (``owner``) and gives it a ``send`` function for the current connection.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from ._callbacks import add_callback, wait_until
from ._freshness import Freshness, IdSets
from ._live import QueryRunner, Subscription, _call_if_active, _LiveQuery
from ._resume import resume_state
from ._types import Changes, Document, QueryJSON, Timestamp
from .errors import QueryError, WriteError
from .protocol import (
    ChangesAck,
    ChangesMessage,
    ConnectQuery,
    DisconnectQuery,
    EntityData,
    ErrorMessage,
    Message,
    Ready,
    query_id as compute_query_id,
)
from .store.base import LocalStore

__all__ = ["SyncEngine", "Subscription", "QueryRunner"]

log = logging.getLogger(__name__)

#: The owner of writes made while no session exists; the next session to start adopts them.
UNOWNED = "unowned"
#: Checkpoints are persisted at most this often (and on close).
CHECKPOINT_INTERVAL = 0.5
#: How many queries nobody uses any more keep their checkpoint and cached results (most
#: recently used first), so that a later fetch or subscription answers locally and resumes.
MAX_DORMANT_QUERIES = 100


class SyncEngine:
    def __init__(
        self,
        store: LocalStore,
        runner: QueryRunner,
        submit: Callable[..., None],
        *,
        checkpoints: Optional[Mapping[str, Any]] = None,
        on_checkpoints: Optional[Callable[[Dict[str, Any]], None]] = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self._submit = submit  # runs a callback on the dispatcher thread
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._queries: Dict[str, _LiveQuery] = {}
        self._checkpoints: Dict[str, Timestamp] = {
            k: list(v["timestamp"]) for k, v in (checkpoints or {}).items()
            if isinstance(v, Mapping) and isinstance(v.get("timestamp"), list)
        }
        self._on_checkpoints = on_checkpoints
        # Queries with a checkpoint and no user (least recently used first).
        self._dormant: "OrderedDict[str, None]" = OrderedDict.fromkeys(self._checkpoints)
        self._checkpoints_dirty = False
        self._checkpoint_timer: Optional[threading.Timer] = None
        self._send: Optional[Callable[[Message], bool]] = None
        self._owner: Optional[str] = None
        self._in_flight = False  # a CHANGES batch is on the wire, waiting for ACK or ERROR
        self._connection = 0  # bumps on every READY and disconnect
        # What the server keeps fresh on this connection (see _freshness.py).
        self._fresh = Freshness(lambda coll, eid: store.get_cached(coll, eid) is not None)
        self._deferred: List[Message] = []  # sent after the engine lock is released
        self._writes_first = 0  # batches to be answered before the queries are sent (after READY)
        self._failures: List[WriteError] = []  # rejected batches wait_for_sync has not reported yet
        self._sync_error_callbacks: List[Callable[[WriteError], Any]] = []
        self.closed = False

    # ------------------------------------------------------------------ wiring

    def set_owner(self, owner: Optional[str]) -> None:
        """Whose pending writes may go out on the connection (the session's identity)."""
        with self._lock:
            self._owner = owner

    def connection_ready(self, send: Callable[[Message], bool]) -> None:
        """READY arrived: re-send the un-acked batch, then pending writes, then every live query.

        The queries wait until the server has answered the writes made before READY (two
        batches at most: the un-acked one, then everything pending, merged). A query that
        starts while a write is being committed can come back with that entity half updated
        (@triplit/server 1.1.8: the document is right in storage, wrong in the subscription),
        and the server sends nothing more about it until it changes again.
        """
        with self._lock:
            self._connection += 1
            self._send = send
            self._in_flight = False
            self._reset_connection_state()
            owner = self._owner
            if owner is not None:
                entries = self.store.pending_changes(owner)
                inflight = any(e.inflight for e in entries)
                self._writes_first = int(inflight) + int(any(not e.inflight for e in entries))
        self._push()
        with self._lock:
            if not self._in_flight:
                self._writes_first = 0  # nothing could be sent (another identity's batch is in flight)
        if self._writes_first == 0:
            self._connect_all()
        self._send_deferred()

    def _connect_all(self) -> None:
        with self._lock:
            to_connect = [q for q in self._queries.values() if q.remote and q.error is None]
        for live in to_connect:
            self._connect_query(live)

    def _batch_answered(self) -> None:
        """An ACK or a rejection arrived: the queries may go once the writes before READY are in."""
        with self._lock:
            if self._writes_first == 0:
                return
            self._writes_first -= 1
            if self._writes_first > 0 and self._in_flight:
                return
            self._writes_first = 0
        self._connect_all()

    def connection_lost(self) -> None:
        """The socket closed: nothing is in flight any more, every query must be sent again."""
        with self._lock:
            self._connection += 1
            self._send = None
            self._in_flight = False
            self._reset_connection_state()
            self._cond.notify_all()
        self.flush_checkpoints()

    def _reset_connection_state(self) -> None:
        self._writes_first = 0
        for live in self._queries.values():
            live.sent = live.fulfilled = live.counted = False
        self._fresh.reset()
        self._deferred = []

    # ------------------------------------------------------------------ inbound

    def handle_message(self, msg: Message) -> None:
        """Everything the server sends, on the reader thread."""
        if isinstance(msg, EntityData):
            self._on_entity_data(msg)
        elif isinstance(msg, ChangesAck):
            self._on_ack(msg.timestamp)
        elif isinstance(msg, ErrorMessage):
            self._on_error(msg)
        elif isinstance(msg, Ready):
            pass  # the client calls connection_ready with the send function
        else:
            log.debug("ignoring %s", type(msg).__name__)
        self._send_deferred()

    def _on_entity_data(self, msg: EntityData) -> None:
        changed = self.store.apply_server_changes(msg.changes, msg.timestamp)
        deliveries: List[Tuple[_LiveQuery, bool]] = []
        with self._lock:
            self._fresh.received = msg.changes
            try:
                newly: Set[str] = set()
                verified: IdSets = {}
                for qid in msg.for_queries:
                    live = self._queries.get(qid)
                    if live is not None and live.sent and not live.fulfilled:
                        live.fulfilled = True
                        newly.add(qid)
                    else:
                        answer = self._fresh.answered(qid)
                        if answer is not None:
                            verified.setdefault(answer[0], set()).update(answer[1])
                for live in self._queries.values():
                    if live.fulfilled:
                        self._checkpoints[live.id] = list(msg.timestamp)
                    if live.id in newly or (live.collections & changed):
                        deliveries.append((live, live.id in newly))
                    elif verified and live.fulfilled and any(live.deps.get(c, ()) and live.deps[c] & ids
                                                             for c, ids in verified.items()):
                        self._update_ids(live)  # now known fresh: may be listed on resume
                if deliveries or newly:
                    self._checkpoints_dirty = True
                for live, first in deliveries:
                    self._refresh(live, remote_first=first)
            finally:
                self._fresh.received = None
            self._cond.notify_all()
        self._schedule_checkpoint_save()

    def _on_ack(self, timestamp: Timestamp) -> None:
        changed = self.store.ack_inflight(timestamp)
        with self._lock:
            self._in_flight = False
            self._refresh_collections(changed)
            self._cond.notify_all()
        self._push()
        self._batch_answered()

    def _on_error(self, msg: ErrorMessage) -> None:
        if msg.is_query_error:
            self._on_query_error(msg)
        elif msg.message_type == "CHANGES":
            self._on_write_rejected(msg)
        else:
            log.warning("server error for %s: %s", msg.message_type or "a frame", msg.message)

    def _on_write_rejected(self, msg: ErrorMessage) -> None:
        rejected = self.store.reject_inflight() or {}
        error = msg.to_exception()
        assert isinstance(error, WriteError)
        error.changes = rejected
        log.warning("the server rejected a write batch (%s): %s", error.name, error.message)
        with self._lock:
            self._in_flight = False
            self._failures.append(error)
            self._refresh_collections(set(rejected))
            callbacks = list(self._sync_error_callbacks)
            self._cond.notify_all()
        for callback in callbacks:
            self._submit(callback, error)
        self._push()
        self._batch_answered()

    def _on_query_error(self, msg: ErrorMessage) -> None:
        error = msg.to_exception()
        assert isinstance(error, QueryError)
        with self._lock:
            verification = self._fresh.failed(msg.query_key or "")
            if verification is not None:
                log.warning("could not verify cached %s entities: %s", verification[0], error)
                return
            live = self._queries.get(msg.query_key or "")
            if live is None:
                return
            live.error = error
            self._uncount(live)
            live.sent = False
            send = self._send
            for sub in live.subscribers:
                if sub.on_error is not None:
                    self._submit(sub.on_error, error)
                else:
                    log.warning("query %s failed: %s", live.id, error)
            self._cond.notify_all()
        if send is not None:
            send(DisconnectQuery(live.id))  # as the JS client does: stop a query that cannot run

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
            sub = Subscription(self, live, on_results, on_error, on_remote_fulfilled, local_only)
            live.subscribers.append(sub)
            need_connect = not local_only and not live.remote
            if need_connect:
                live.remote = True
            # A query with a checkpoint resumes from the ids it recorded: ask the server before
            # evaluating locally, so that the local work overlaps with the server's.
            resume_early = need_connect and live.id in self._checkpoints and not live.evaluated
        if resume_early:
            self._connect_query(live)
        with self._lock:
            if not live.evaluated:
                self._evaluate(live)
            # Local results right away when they mean something: the query was answered by the
            # server before (it has a checkpoint), only local results were asked for, or the
            # server cannot be asked now.
            deliver_now = local_only or offline or live.fulfilled or live.id in self._checkpoints or live.rows
            if live.error is not None and on_error is not None:
                self._submit(on_error, live.error)
        if need_connect and not resume_early:
            # Also before decoding the local rows for the first callback.
            self._connect_query(live)
        if deliver_now:
            with self._lock:
                if sub._delivered is None:  # unless an answer from the server came first
                    self._deliver(sub, live.rows)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if not sub.active:
                return
            sub.active = False
            live = sub._live
            if sub in live.subscribers:
                live.subscribers.remove(sub)
            if not sub.local_only and not any(not s.local_only for s in live.subscribers) and live.holds == 0:
                live.remote = False
        self._after_release(live)

    def hold(self, query: QueryJSON) -> "_LiveQuery":
        """Keep a query subscribed on the server while a fetch waits for it."""
        with self._lock:
            live = self._live_for(query)
            live.holds += 1
            need_connect = not live.remote
            live.remote = True
        if need_connect:
            self._connect_query(live)
        return live

    def release(self, live: "_LiveQuery") -> None:
        with self._lock:
            live.holds -= 1
            if live.holds == 0 and not any(not s.local_only for s in live.subscribers):
                live.remote = False
        self._after_release(live)

    def _after_release(self, live: "_LiveQuery") -> None:
        """A user of ``live`` left: drop the query, or end its server subscription if nobody
        needs the server's answers any more."""
        if live.idle:
            self._drop(live)
        elif not live.remote:
            self._disconnect_query(live)
        self._send_deferred()

    def wait_fulfilled(self, live: "_LiveQuery", timeout: Optional[float]) -> bool:
        """Wait until the server answered (True), the query failed (raises) or time ran out (False)."""
        def answered() -> bool:
            if live.error is not None:
                raise live.error
            return live.fulfilled

        with self._cond:
            return wait_until(self._cond, answered, timeout)

    def has_checkpoint(self, query: QueryJSON) -> bool:
        """Whether the server has answered this query here (it is live and fulfilled, or it has
        a checkpoint from an earlier subscription or fetch, in this process or an earlier one)."""
        qid = compute_query_id(query)
        with self._lock:
            live = self._queries.get(qid)
            if qid in self._dormant:
                self._dormant.move_to_end(qid)
            return qid in self._checkpoints or (live is not None and live.fulfilled)

    def run_local(self, query: QueryJSON) -> List[Document]:
        with self._lock:
            return self.runner.run(query)[0]

    def _live_for(self, query: QueryJSON) -> "_LiveQuery":
        qid = compute_query_id(query)
        live = self._queries.get(qid)
        if live is None:
            live = _LiveQuery(qid, query, self.runner.collections(query))
            self._queries[qid] = live
            self._dormant.pop(qid, None)
        return live

    def _connect_query(self, live: "_LiveQuery") -> None:
        with self._lock:
            send = self._send
            if send is None or live.sent or not live.remote or self._writes_first:
                return
            state = self._resume_state(live)
            live.listed = {c: set(ids) for c, ids in state["entityIds"].items()} if state else {}
            live.sent = True
            live.error = None
        if not send(ConnectQuery(live.id, live.query, state)):
            with self._lock:
                live.sent = False  # not connected after all: READY will send it

    def _disconnect_query(self, live: "_LiveQuery") -> None:
        with self._lock:
            send, was_sent = self._send, live.sent
            self._uncount(live)
            live.sent = live.fulfilled = False
        if send is not None and was_sent:
            send(DisconnectQuery(live.id))

    def _drop(self, live: "_LiveQuery") -> None:
        """The last user is gone: end the server subscription.

        A query the server answered keeps its checkpoint and its cached results, dormant: a
        later local-first fetch answers from them and a later subscription resumes from the
        checkpoint (PROTOCOL.md §5.5). Only the :data:`MAX_DORMANT_QUERIES` most recently used
        stay; older ones are forgotten (see :meth:`_forget`).
        """
        self._disconnect_query(live)
        with self._lock:
            if self._queries.get(live.id) is not live or not live.idle:
                return
            del self._queries[live.id]
            if live.id in self._checkpoints:
                self._dormant[live.id] = None
                self._dormant.move_to_end(live.id)
                while len(self._dormant) > MAX_DORMANT_QUERIES:
                    oldest, _ = self._dormant.popitem(last=False)
                    self._forget(oldest)
            else:
                self._forget(live.id)
        self._schedule_checkpoint_save()

    def _forget(self, qid: str) -> None:
        """Drop a query's checkpoint and evict the cached entities no other query holds.

        The server does not update entities that no live query holds; evicting them, as the
        server would have done had the query's results emptied, keeps the cache bounded.
        """
        mine = self.store.query_ids(qid)
        self.store.drop_query(qid)
        if self._checkpoints.pop(qid, None) is not None:
            self._checkpoints_dirty = True
        if not mine:
            return
        for other in self.store.query_id_list():
            for coll, ids in self.store.query_ids(other).items():
                if coll in mine:
                    mine[coll] -= ids
        # Live queries the server has not answered yet have no recorded ids; what they match
        # locally may be exactly what the server holds back as "already sent" for them.
        for other_live in self._queries.values():
            for coll, ids in other_live.deps.items():
                if coll in mine:
                    mine[coll] -= ids
        mine = {c: ids for c, ids in mine.items() if ids}
        if mine:
            changed = self.store.evict(mine)
            self._refresh_collections(changed)

    def _resume_state(self, live: "_LiveQuery") -> Optional[Dict[str, Any]]:
        """CONNECT_QUERY ``state`` for ``live`` (see _resume.py)."""
        checkpoint = self._checkpoints.get(live.id)
        known = self.store.query_ids(live.id) if checkpoint is not None else {}
        if not live.evaluated and checkpoint is None:
            self._evaluate(live)
        # Not evaluated yet (a resume, see subscribe): what the query matches locally beyond its
        # recorded ids is checked once the server has answered (_freshness.py).
        local = live.deps if live.evaluated else {}
        cached = {c: self.store.cached_ids(c) for c in set(known) | set(local)}
        return resume_state(live.id, checkpoint, known, local, cached, self._checkpoints,
                            self.store.query_ids)

    # ------------------------------------------------------------------ evaluation and delivery

    def _evaluate(self, live: "_LiveQuery", first_answer: bool = False) -> bool:
        """Re-run a query locally and update what depends on its results; True when they changed."""
        changed, old = self._run(live)
        self._bookkeep(live, old, changed, first_answer)
        return changed

    def _run(self, live: "_LiveQuery") -> Tuple[bool, IdSets]:
        rows, deps = self.runner.run(live.query)
        changed = not live.evaluated or rows != live.rows
        old = live.deps
        live.rows, live.deps, live.evaluated = rows, deps, True
        return changed, old

    def _bookkeep(self, live: "_LiveQuery", old: IdSets, changed: bool, first_answer: bool) -> None:
        """What the server holds for this query, and its resume ids, after an evaluation."""
        if live.counted:
            self._verify(self._fresh.track(old, live.deps))
        elif first_answer:
            self._count(live)
        if (changed or first_answer) and live.fulfilled:
            self._update_ids(live)

    def _count(self, live: "_LiveQuery") -> None:
        """The server just answered ``live``: its results are held (and fresh) from now on."""
        if not live.counted:
            live.counted = True
            self._verify(self._fresh.track({}, live.deps, live.listed))

    def _uncount(self, live: "_LiveQuery") -> None:
        if live.counted:
            live.counted = False
            self._fresh.track(live.deps, {})

    def _verify(self, suspicious: IdSets) -> None:
        """Check cached entities the server may not keep fresh (sent once the lock is released)."""
        if self._send is None:
            return  # not connected: the next CONNECT_QUERY's resume state covers them
        for coll, ids in suspicious.items():
            log.debug("verifying %d cached %s entities", len(ids), coll)
            self._deferred.append(self._fresh.verification(coll, ids))

    def _send_deferred(self) -> None:
        with self._lock:
            if not self._deferred:
                return
            messages, self._deferred = self._deferred, []
            send = self._send
        if send is not None:
            for msg in messages:
                send(msg)

    def _update_ids(self, live: "_LiveQuery") -> None:
        new = self._fresh.without_unverified(live.deps)  # not known fresh yet: never vouched for
        old = self.store.query_ids(live.id)
        added = {c: ids - old.get(c, set()) for c, ids in new.items()}
        removed = {c: ids - new.get(c, set()) for c, ids in old.items()}
        added = {c: s for c, s in added.items() if s}
        removed = {c: s for c, s in removed.items() if s}
        if added or removed:
            self.store.update_query_ids(live.id, added, removed)

    def _refresh(self, live: "_LiveQuery", *, remote_first: bool = False) -> None:
        changed, old = self._run(live)
        decoded: Optional[List[Dict[str, Any]]] = None
        for sub in list(live.subscribers):
            if (changed or sub._delivered is None) and sub._delivered is not live.rows:
                if decoded is None:
                    decoded = self._decoded(live)
                sub._delivered = live.rows
                self._submit(_call_if_active, sub, [dict(row) for row in decoded])
            if remote_first and sub.on_remote_fulfilled is not None:
                self._submit(sub.on_remote_fulfilled)
        # After the callbacks are on their way: on a large first answer this bookkeeping
        # takes as long as decoding the rows, and nothing the callbacks see depends on it.
        self._bookkeep(live, old, changed, remote_first)

    def _refresh_collections(self, changed: Iterable[str]) -> None:
        changed = set(changed)
        if not changed:
            return
        for live in list(self._queries.values()):
            if live.collections & changed and (live.subscribers or live.evaluated):
                self._refresh(live)

    def _deliver(self, sub: Subscription, rows: List[Document]) -> None:
        if sub._delivered is rows:
            return
        sub._delivered = rows
        decoded = self._decoded(sub._live) if rows is sub._live.rows else self.runner.decode(sub._live.query, rows)
        self._submit(_call_if_active, sub, [dict(row) for row in decoded])

    def _decoded(self, live: "_LiveQuery") -> List[Dict[str, Any]]:
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

    # ------------------------------------------------------------------ writes

    def write(self, changes: Changes) -> None:
        """Store encoded local changes in the outbox (durably), update views, push."""
        with self._lock:
            changed = self.store.add_local_changes(changes, self._owner or UNOWNED)
            self._refresh_collections(changed)
        self._push()
        self._send_deferred()

    def _push(self) -> None:
        with self._lock:
            send, owner = self._send, self._owner
            if send is None or owner is None or self._in_flight or self.closed:
                return
            batch = self.store.next_batch(owner)
            if not batch:
                return
            self._in_flight = True
            connection = self._connection
        if not send(ChangesMessage(batch)):
            with self._lock:
                if self._connection == connection:
                    self._in_flight = False  # READY will re-send the in-flight batch

    def on_sync_error(self, callback: Callable[[WriteError], Any]) -> Callable[[], None]:
        return add_callback(self._lock, self._sync_error_callbacks, callback)

    def wait_for_sync(self, timeout: Optional[float]) -> bool:
        """Block until this owner's outbox is empty; raise the first unreported rejection."""
        def synced() -> bool:
            if self._failures:
                failures, self._failures = self._failures, []
                first = failures[0]
                if len(failures) > 1:
                    first.message = f"{first.message} (and {len(failures) - 1} more rejected batches)"
                    first.args = (first.message,)
                first.failures = failures
                raise first
            return not self.store.has_pending(self._owner or UNOWNED)

        with self._cond:
            return wait_until(self._cond, synced, timeout)

    def clear_pending(self, collection: Optional[str] = None, entity_id: Optional[str] = None) -> None:
        with self._lock:
            changed = self.store.clear_pending(collection, entity_id)
            self._refresh_collections(changed)
            self._cond.notify_all()
        self._send_deferred()

    def local_changes_applied(self, changed: Iterable[str]) -> None:
        """The store changed underneath (clear, fork): re-evaluate what depends on it."""
        with self._lock:
            self._refresh_collections(changed)
        self._send_deferred()

    # ------------------------------------------------------------------ checkpoints

    def checkpoints(self) -> Dict[str, Any]:
        with self._lock:
            return {qid: {"timestamp": list(ts)} for qid, ts in self._checkpoints.items()}

    def reset_checkpoints(self) -> None:
        """Forget resume state (a new identity or an emptied database)."""
        with self._lock:
            for qid in list(self._checkpoints):
                self.store.drop_query(qid)
            self._checkpoints.clear()
            self._dormant.clear()
            self._checkpoints_dirty = True
        self.flush_checkpoints()

    def _schedule_checkpoint_save(self) -> None:
        if self._on_checkpoints is None:
            return
        with self._lock:
            if not self._checkpoints_dirty or self._checkpoint_timer is not None or self.closed:
                return
            timer = threading.Timer(CHECKPOINT_INTERVAL, self.flush_checkpoints)
            timer.daemon = True
            timer.name = "triplit-checkpoints"
            self._checkpoint_timer = timer
        timer.start()

    def flush_checkpoints(self) -> None:
        """Persist the checkpoints now, if they changed (after the store committed)."""
        with self._lock:
            timer, self._checkpoint_timer = self._checkpoint_timer, None
            if not self._checkpoints_dirty or self._on_checkpoints is None:
                return
            self._checkpoints_dirty = False
            data = {qid: {"timestamp": list(ts)} for qid, ts in self._checkpoints.items()}
        if timer is not None:
            timer.cancel()
        try:
            self._on_checkpoints(data)
        except Exception:
            log.exception("could not save query checkpoints")
            with self._lock:
                self._checkpoints_dirty = True

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._send = None
            self._cond.notify_all()
        self.flush_checkpoints()
