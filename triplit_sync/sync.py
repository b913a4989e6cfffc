"""SyncEngine: joins the connection to the local database.

It keeps the registry of live queries (one server subscription per distinct query, shared by
its subscribers), applies ENTITY_DATA to the store and re-evaluates only the queries whose
collections changed, keeps a resume checkpoint per query (PROTOCOL.md §5.5), and hands the
writes to the pipeline (_pipeline.py), which keeps one CHANGES batch in flight. What goes on
the wire, and in which order, is decided under the engine's lock (_wireorder.py: never a
CONNECT_QUERY and a CHANGES together) and sent afterwards, in that order, by whichever thread
finds messages waiting.

Everything here runs either on a caller's thread (subscribe, write, fetch) or on the
transport's reader thread (``handle_message``); user callbacks only ever run on the
dispatcher thread. The engine knows nothing of sessions or tokens: the client tells it whose
writes may be sent (``set_owner``) and gives it a ``send`` function for each connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ._callbacks import add_callback, wait_until
from ._freshness import Freshness, IdSets
from ._live import QueryRunner, Subscription, _call_if_active, _LiveQuery
from ._pipeline import WritePipeline
from ._resume import resume_state
from ._types import Changes, Document, QueryJSON, Timestamp
from ._wireorder import Intent, WireOrder
from ._wirequery import wire_query
from .errors import ProtocolError, QueryError, WriteError
from .protocol import (
    ChangesAck,
    ChangesMessage,
    ConnectQuery,
    DisconnectQuery,
    EntityData,
    ErrorMessage,
    Message,
    Ping,
    Pong,
    Ready,
    query_id as compute_query_id,
)
from .store.base import LocalStore

__all__ = ["SyncEngine", "Subscription", "QueryRunner", "UNOWNED"]

logger = logging.getLogger(__name__)

#: The owner of writes made while no session exists; the next session to start adopts them.
UNOWNED = "unowned"
#: Checkpoints are persisted at most this often (and on close).
CHECKPOINT_INTERVAL = 0.5
#: How many queries nobody uses any more keep their checkpoint and cached results (most
#: recently used first), so that a later fetch or subscription answers locally and resumes.
MAX_DORMANT_QUERIES = 100
#: The send-order rule of PROTOCOL.md §13.2 (_wireorder.py); off only in tests of the race.
_ENFORCE_SEND_ORDER = True

_Out = Tuple[int, Message]


class SyncEngine:
    def __init__(
        self,
        store: LocalStore,
        runner: QueryRunner,
        submit: Callable[..., None],
        *,
        checkpoints: Optional[Mapping[str, Any]] = None,
        on_checkpoints: Optional[Callable[[Dict[str, Any]], None]] = None,
        resume_margin: float = 0.0,
        ack_timeout: float = 10.0,
        on_stall: Optional[Callable[[], None]] = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self._submit = submit  # runs a callback on the dispatcher thread
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._queries: Dict[str, _LiveQuery] = {}
        #: Queries by the id their CONNECT_QUERY went out under on this connection, and how many
        #: times each query was sent on it (see _query_message).
        self._by_wire: Dict[str, _LiveQuery] = {}
        self._wire_uses: Dict[str, int] = {}
        self._checkpoints: Dict[str, Timestamp] = {
            k: list(v["timestamp"]) for k, v in (checkpoints or {}).items()
            if isinstance(v, Mapping) and _valid_timestamp(v.get("timestamp"))
        }
        self._on_checkpoints = on_checkpoints
        # Queries with a checkpoint and no user (least recently used first).
        self._dormant: "OrderedDict[str, None]" = OrderedDict.fromkeys(self._checkpoints)
        self._checkpoints_dirty = False
        self._checkpoint_timer: Optional[threading.Timer] = None
        self.resume_margin_ms = int(resume_margin * 1000)
        self.ack_timeout = ack_timeout
        self._on_stall = on_stall
        # Per connection (reset by connection_ready / connection_lost):
        self._connection = 0  # bumps on every READY and disconnect
        self._send: Optional[Callable[[Message], bool]] = None
        self._wire: Optional[WireOrder] = None
        self._fresh = Freshness(lambda coll, eid: store.get_cached(coll, eid) is not None)
        self._out: Deque[_Out] = deque()  # decided, not sent yet (in this order)
        self._draining = False
        self._barriers = 0
        self._ack_timer: Optional[threading.Timer] = None
        self._changes_sent_at = 0.0  # when the CHANGES on the wire was sent
        self.pipeline = WritePipeline(store, submit, self._verify)
        self.closed = False

    # ------------------------------------------------------------------ wiring

    def set_owner(self, owner: Optional[str]) -> None:
        """Whose pending writes may go out on the connection (the session's identity)."""
        with self._lock:
            self.pipeline.owner = owner
            self._pump()
        self._drain()

    def connection_ready(self, send: Callable[[Message], bool]) -> None:
        """READY arrived: every live query is sent again (resuming from its checkpoint), a batch
        left in flight is checked with the server, then the writes go (see _wireorder.py)."""
        with self._lock:
            self._connection += 1
            self._send = send
            self._wire = WireOrder(_ENFORCE_SEND_ORDER)
            self._reset_connection_state()
            self.pipeline.connection_ready()
            for live in self._queries.values():
                if live.remote and live.error is None:
                    self._wire.queue(("q", live.id))
            self._pump()
        self._drain()

    def connection_lost(self) -> None:
        """The socket closed: nothing is in flight any more, every query must be sent again."""
        with self._lock:
            self._connection += 1
            self._send = None
            self._wire = None
            self._reset_connection_state()
            self.pipeline.connection_lost()
            self._cond.notify_all()
        self.flush_checkpoints()

    def _reset_connection_state(self) -> None:
        for live in self._queries.values():
            live.sent = live.fulfilled = live.counted = live.unsettled = False
        self._fresh.reset()
        self._out.clear()
        self._by_wire.clear()
        self._wire_uses.clear()

    # ------------------------------------------------------------------ the wire

    def _pump(self) -> None:
        """Decide what may go out now (under the lock); :meth:`_drain` sends it."""
        wire, send = self._wire, self._send
        if wire is None or send is None or self.closed:
            return
        while True:
            writes = self.pipeline.has_batch()
            if wire.may_send_queries(writes):
                sent = False
                for intent in wire.take_queued():
                    msg = self._query_message(intent)
                    if msg is not None:
                        self._out.append((self._connection, msg))
                        if msg.state is not None:
                            wire.sent_stateful(msg.id)
                        sent = True
                if sent:
                    wire.last = "queries"
                    if wire.enforce:
                        self._barriers += 1
                        wire.barrier = self._barriers
                        self._out.append((self._connection, Ping(client_timestamp=-self._barriers)))
                continue
            if writes and wire.may_send_changes():
                batch = self.pipeline.take_batch()
                if batch is None:
                    return
                self._out.append((self._connection, ChangesMessage(batch)))
                wire.changes_out = True
                wire.last = "changes"
                self._watch_ack()
                continue
            return

    def _query_message(self, intent: Intent) -> Optional[ConnectQuery]:
        kind, key = intent
        if kind == "v":
            return self._fresh.message(key)
        live = self._queries.get(key)
        if live is None or live.sent or not live.remote or live.error is not None:
            return None
        # The resume state is computed now, not when the query was queued: an id listed as
        # unchanged must still be in the cache when the server skips it.
        state = self._resume_state(live)
        live.listed = {c: set(ids) for c, ids in state["entityIds"].items()} if state else {}
        live.sent = True
        # A query sent again on one connection (unsubscribed, then subscribed) goes out under
        # a new id: the server may still send frames for the old subscription (in flight, or
        # flushed from its 10 ms buffer after the DISCONNECT_QUERY), and under the same id one
        # would pass for the new one's first answer (a CHANGES would then go before it, §13.2).
        uses = self._wire_uses.get(live.id, 0)
        self._wire_uses[live.id] = uses + 1
        live.wire_id = live.id if uses == 0 else f"{live.id}.{uses}"
        self._by_wire[live.wire_id] = live
        return ConnectQuery(live.wire_id, wire_query(live.query, live.id), state)

    def _drain(self) -> None:
        """Send what :meth:`_pump` decided, in order. Called without the engine's lock held;
        a thread that finds another one sending leaves its messages to it."""
        with self._lock:
            if self._draining or not self._out:
                return
            self._draining = True
        try:
            while True:
                with self._lock:
                    if not self._out:
                        self._draining = False
                        return
                    connection, msg = self._out.popleft()
                    send = self._send if connection == self._connection else None
                if send is not None:
                    send(msg)  # a failed send drops the connection: connection_lost resets all
        except BaseException:
            with self._lock:
                self._draining = False
            raise

    def _want_remote(self, live: _LiveQuery) -> None:
        if self._wire is not None and not live.sent:
            self._wire.queue(("q", live.id))

    def _verify(self, ids: IdSets) -> Set[str]:
        """Start verification queries for cached entities (see _freshness.py); their ids."""
        vids: Set[str] = set()
        if self._wire is None:
            return vids  # not connected: the next CONNECT_QUERY's resume state covers them
        for coll, eids in ids.items():
            if eids:
                logger.debug("verifying %d cached %s entities", len(eids), coll)
                vid = self._fresh.start(coll, set(eids))
                self._wire.queue(("v", vid))
                vids.add(vid)
        return vids

    def _watch_ack(self) -> None:
        """A CHANGES unanswered after ``ack_timeout`` makes the connection prove it is alive
        (``on_stall``: the transport pings and drops a connection that does not answer). One
        timer at a time, however many batches go out."""
        self._changes_sent_at = time.monotonic()
        if self._on_stall is None or not self.ack_timeout or self._ack_timer is not None:
            return
        self._arm_ack_timer(self.ack_timeout)

    def _arm_ack_timer(self, delay: float) -> None:
        timer = threading.Timer(delay, self._ack_overdue)
        timer.daemon = True
        timer.name = "triplit-ack-watch"
        self._ack_timer = timer
        timer.start()

    def _ack_overdue(self) -> None:
        with self._lock:
            self._ack_timer = None
            wire = self._wire
            if wire is None or not wire.changes_out or self.closed:
                return
            waited = time.monotonic() - self._changes_sent_at
            if waited < self.ack_timeout:
                self._arm_ack_timer(self.ack_timeout - waited)  # a later batch: its own deadline
                return
            self._arm_ack_timer(self.ack_timeout)
        logger.info("no answer to a write batch within %s s; checking the connection", self.ack_timeout)
        if self._on_stall is not None:
            self._on_stall()

    # ------------------------------------------------------------------ inbound

    def handle_message(self, msg: Message) -> None:
        """Everything the server sends, on the reader thread."""
        if isinstance(msg, EntityData):
            self._on_entity_data(msg)
        elif isinstance(msg, ChangesAck):
            self._on_ack(msg.timestamp)
        elif isinstance(msg, ErrorMessage):
            self._on_error(msg)
        elif isinstance(msg, Pong):
            self._on_pong(msg)
        elif isinstance(msg, Ready):
            pass  # the client calls connection_ready with the send function
        else:
            logger.debug("ignoring %s", type(msg).__name__)
        self._drain()
        self._schedule_checkpoint_save()

    def _on_pong(self, msg: Pong) -> None:
        ts = msg.client_timestamp
        if ts is None or ts >= 0:
            return  # the transport's keepalive
        with self._lock:
            if self._wire is not None and self._wire.pong(int(-ts)):
                self._pump()

    def report_frame_problem(self, for_queries: Iterable[str], error: BaseException) -> None:
        """A frame for these queries was (partly) not applied: their subscribers' ``on_error``
        hears of it (logged when there is none)."""
        with self._lock:
            subs = [sub for qid in for_queries if qid in self._by_wire
                    for sub in self._by_wire[qid].subscribers if sub.active]
        for sub in subs:
            if sub.on_error is not None:
                self._submit(sub.on_error, error)
        if not any(sub.on_error is not None for sub in subs):
            logger.warning("%s", error)

    def _on_entity_data(self, msg: EntityData) -> None:
        if msg.rejected:  # dropped at the boundary (_inbound.py); the rest applies
            shown = "; ".join(p for p in msg.rejected if p)
            self.report_frame_problem(msg.for_queries, ProtocolError(
                f"ENTITY_DATA frame: dropped {len(msg.rejected)} invalid entities: {shown}"))
        with self._lock:
            if self._wire is None:
                return  # from a connection that has ended
            self._wire.answered(msg.for_queries)
            newly: List[_LiveQuery] = []
            answered: List[Tuple[str, Tuple[str, Set[str]]]] = []
            definitive: IdSets = {}
            for qid in msg.for_queries:
                live = self._by_wire.get(qid)
                if live is not None and live.sent and not live.fulfilled:
                    newly.append(live)  # its deletes of listed ids: "not in MY results" (see below)
                else:
                    verification = self._fresh.verifying(qid)
                    if verification is not None:
                        answered.append((qid, verification))
                        definitive.setdefault(verification[0], set()).update(verification[1])
            changes, kept = self._hold_back_deletes(msg.changes, definitive, resumed=[q.id for q in newly])
            changed = self.store.apply_server_changes(changes, msg.timestamp)
            if kept:
                # Before the answers below settle: a query showing a held-back entity waits for
                # its verification (see _settle).
                self._verify(kept)
            self._fresh.received = changes
            try:
                verified: IdSets = {}
                for live in newly:
                    live.fulfilled = True
                probed: Set[str] = set()  # changed by a probe's answer: which entities is not known
                for vid, _ in answered:
                    coll, ids = self._fresh.answered(vid) or ("", set())
                    verified.setdefault(coll, set()).update(ids)
                    probed |= self.pipeline.probe_answered(vid)
                changed |= probed
                applied = _ids_of(changes)
                deliveries: List[Tuple[_LiveQuery, bool]] = []
                first = {live.id for live in newly}
                for live in list(self._queries.values()):
                    if live.fulfilled:
                        self._checkpoints[live.id] = list(msg.timestamp)
                    if live.id in first or (live.collections & changed):
                        if live.id in first or live.collections & probed or not self._unaffected(live, applied):
                            deliveries.append((live, live.id in first))
                    elif verified and live.fulfilled and any(live.deps.get(c, ()) and live.deps[c] & ids
                                                             for c, ids in verified.items()):
                        self._update_ids(live)  # now known fresh: may be listed on resume
                if deliveries or newly:
                    self._checkpoints_dirty = True
                for live, is_first in deliveries:
                    self._refresh(live, remote_first=is_first)
                if answered:
                    self._settle_all()
                for live in newly:
                    self._release_auto(live)
            finally:
                self._fresh.received = None
            self._cond.notify_all()
            self._pump()

    def _hold_back_deletes(self, changes: Changes, definitive: IdSets, *,
                           resumed: Sequence[str] = ()) -> Tuple[Changes, IdSets]:
        """Deletes in ENTITY_DATA are real deletes or evictions, and the wire does not say which:
        an entity that left every live query of the connection (PROTOCOL.md §5.3), or, in the
        first answer of a resumed query, a listed id that is not in *that query's* results (it
        may only have left it, while other queries still hold it). Such a delete is held back
        and the entity checked with the server (a verification, whose answer is definitive:
        ``id in [...]``, not there means gone) when applying it could be wrong:

        - the entity is this client's own write: an eviction would make it vanish from local
          reads while the server still has it;
        - the frame answers a resumed query and another query of this connection holds the
          entity or listed it in its own resume state.

        Returns the changes to apply and the held-back ids."""
        kept: IdSets = {}
        out: Optional[Changes] = None
        elsewhere: Dict[str, Set[str]] = {}
        if resumed:
            for live in self._queries.values():
                if live.sent and live.id not in resumed:
                    for coll, ids in live.listed.items():
                        elsewhere.setdefault(coll, set()).update(ids)
        for coll, c in changes.items():
            if not c["deletes"]:
                continue
            sure = definitive.get(coll, ())
            other = elsewhere.get(coll, ())
            hold = {eid for eid in c["deletes"]
                    if eid not in sure and eid not in c["sets"] and self.store.get_cached(coll, eid) is not None
                    and (self._own(coll, eid)
                         or (resumed and (eid in other or self._fresh.is_held(coll, eid))))}
            if hold:
                kept[coll] = hold
                if out is None:
                    out = dict(changes)
                out[coll] = {"sets": c["sets"], "deletes": c["deletes"] - hold}
        return (out if out is not None else changes), kept

    def _own(self, coll: str, eid: str) -> bool:
        # The store's mark outlives the server's echo and a restart: an own write may be evicted
        # from a connection later (it leaves every live query); only a delete that applies
        # (definitive, or of an entity not ours) ends it.
        return self.store.written(coll, eid) or self.store.has_outbox_entry(coll, eid)

    def _on_ack(self, timestamp: Timestamp) -> None:
        with self._lock:
            if self._wire is None:
                return
            self._wire.changes_out = False
            batch = self.pipeline.acked(timestamp)
            if batch is not None:
                self._refresh_collections(set(batch), _ids_of(batch))
            self._cond.notify_all()
            self._pump()

    def _on_error(self, msg: ErrorMessage) -> None:
        if msg.is_query_error:
            self._on_query_error(msg)
        elif msg.message_type == "CHANGES":
            self._on_write_rejected(msg)
        else:
            logger.warning("server error for %s: %s", msg.message_type or "a frame", msg.message)

    def _on_write_rejected(self, msg: ErrorMessage) -> None:
        error = msg.to_exception()
        assert isinstance(error, WriteError)
        with self._lock:
            if self._wire is None:
                return
            self._wire.changes_out = False
            changed = self.pipeline.rejected(error)
            self._refresh_collections(changed)
            self._cond.notify_all()
            self._pump()

    def _on_query_error(self, msg: ErrorMessage) -> None:
        error = msg.to_exception()
        assert isinstance(error, QueryError)
        key = msg.query_key or ""
        with self._lock:
            if self._wire is not None and self._wire.answered([key]):
                self._pump()
            verification = self._fresh.failed(key)
            if verification is not None:
                logger.warning("could not verify cached %s entities: %s", verification[0], error)
                self._refresh_collections(self.pipeline.probe_failed(key))
                self._settle_all()
                self._cond.notify_all()
                self._pump()
                return
            live = self._by_wire.get(key)
            if live is None:
                return
            live.error = error
            self._uncount(live)
            was_sent, live.sent = live.sent, False
            for sub in live.subscribers:
                if sub.on_error is not None:
                    self._submit(sub.on_error, error)
                else:
                    logger.warning("query %s failed: %s", live.id, error)
            if was_sent and self._wire is not None:
                # as the JS client does: stop a query that cannot run
                self._out.append((self._connection, DisconnectQuery(live.wire_id)))
            self._release_auto(live)
            self._cond.notify_all()

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
                self._evaluate(live)
            if live.error is not None and on_error is not None:
                self._submit(on_error, live.error)
            self._pump()
        self._drain()
        with self._lock:
            # Local results right away when they mean something: the query was answered by the
            # server before (it has a checkpoint), only local results were asked for, or the
            # server cannot be asked now.
            if local_only or offline or live.fulfilled or live.id in self._checkpoints or live.rows:
                self._deliver(sub, live.rows)
            if live.fulfilled and not live.unsettled:
                self._tell_fulfilled(sub)  # answered before this subscriber came
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if not sub.active:
                return
            sub.active = False
            live = sub._live
            if sub in live.subscribers:
                live.subscribers.remove(sub)
            self._after_release(live)
            self._pump()
        self._drain()

    def hold(self, query: QueryJSON, *, until_fulfilled: bool = False) -> "_LiveQuery":
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

    def release(self, live: "_LiveQuery") -> None:
        with self._lock:
            live.holds -= 1
            self._after_release(live)
            self._pump()
        self._drain()

    def _release_auto(self, live: _LiveQuery) -> None:
        """The server answered (or refused) ``live``: background refreshes are done with it."""
        if not live.auto_holds:
            return
        while live.auto_holds:
            live.auto_holds -= 1
            live.holds -= 1
        self._after_release(live)

    def _after_release(self, live: _LiveQuery) -> None:
        """A user of ``live`` left: drop the query, or end its server subscription if nobody
        needs the server's answers any more (under the lock, so that a new user arriving at
        the same time sees a consistent query)."""
        if live.idle:
            self._drop(live)
        elif live.holds == 0 and not any(not s.local_only for s in live.subscribers):
            live.remote = False
            self._disconnect_query(live)

    def wait_fulfilled(self, live: "_LiveQuery", timeout: Optional[float]) -> bool:
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
            if qid in self._dormant:
                self._dormant.move_to_end(qid)
            return qid in self._checkpoints or (live is not None and live.fulfilled)

    def is_fulfilled(self, query: QueryJSON) -> bool:
        """Whether this query is live and answered on the current connection."""
        with self._lock:
            live = self._queries.get(compute_query_id(query))
            return live is not None and live.fulfilled and not live.unsettled

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

    def _disconnect_query(self, live: "_LiveQuery") -> None:
        self._uncount(live)
        if self._wire is not None:
            self._wire.unqueue(("q", live.id))
            self._wire.answered([live.wire_id])  # what the server still does for it touches it alone
            if live.sent:
                self._out.append((self._connection, DisconnectQuery(live.wire_id)))
            self._by_wire.pop(live.wire_id, None)
        live.sent = live.fulfilled = False

    def _drop(self, live: "_LiveQuery") -> None:
        """The last user is gone: end the server subscription.

        A query the server answered keeps its checkpoint and its cached results, dormant: a
        later local-first fetch answers from them and a later subscription resumes from the
        checkpoint (PROTOCOL.md §5.5). Only the :data:`MAX_DORMANT_QUERIES` most recently used
        stay; older ones are forgotten (see :meth:`_forget`).
        """
        self._disconnect_query(live)
        live.remote = False
        if self._queries.get(live.id) is not live:
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

    def _forget(self, qid: str) -> None:
        """Drop a query's checkpoint and recorded result ids.

        Its cached entities stay: evicting them would take this client's own writes out of
        every later local read. What stays is only as fresh as the server last sent it; an
        entity no live query holds is checked with the server before a live query shows it
        (_freshness.py), and a resume lists it only with the checkpoint that vouched for it.
        """
        self.store.drop_query(qid)
        if self._checkpoints.pop(qid, None) is not None:
            self._checkpoints_dirty = True

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
                            self.store.query_ids, self.resume_margin_ms)

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
        # After the callbacks are on their way: on a large first answer this bookkeeping
        # takes as long as decoding the rows, and nothing the callbacks see depends on it.
        self._bookkeep(live, old, changed, remote_first)
        if remote_first:
            live.unsettled = True
            self._settle(live)

    def _settle(self, live: "_LiveQuery") -> None:
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
            self._tell_fulfilled(sub)

    def _settle_all(self) -> None:
        for live in self._queries.values():
            if live.unsettled:
                self._settle(live)

    def _tell_fulfilled(self, sub: Subscription) -> None:
        """``on_remote_fulfilled``, once per subscriber and connection."""
        if sub.on_remote_fulfilled is not None and sub._fulfilled_on != self._connection:
            sub._fulfilled_on = self._connection
            self._submit(_call_if_active_remote, sub)

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
                    self._refresh(live)
                except Exception as e:  # one query's local evaluation must not undo a write or an ack
                    logger.error("could not evaluate query %s locally: %s: %s", live.id, type(e).__name__, e,
                                 exc_info=True)
                    for sub in list(live.subscribers):
                        if sub.on_error is not None:
                            self._submit(sub.on_error, e)

    def _unaffected(self, live: "_LiveQuery", ids: IdSets) -> bool:
        # Skipping is what an evaluation with unchanged results does, once every subscriber
        # has had its first delivery.
        return (live.evaluated and all(sub._delivered is not None for sub in live.subscribers)
                and self.runner.unaffected(live.query, live.deps, ids))

    def _deliver(self, sub: Subscription, rows: List[Document]) -> None:
        if sub._delivered is not None:
            return  # the server's answer (or a change) reached it first
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
            self.store.add_local_changes(changes, self.pipeline.owner or UNOWNED)
            self._refresh_collections(changes, _ids_of(changes))
            self._pump()
        self._drain()

    def on_sync_error(self, callback: Callable[[WriteError], Any]) -> Callable[[], None]:
        return add_callback(self._lock, self.pipeline.error_callbacks, callback)

    def wait_for_sync(self, timeout: Optional[float]) -> bool:
        """Block until this owner's outbox is empty; raise the first unreported rejection."""
        def synced() -> bool:
            failure = self.pipeline.take_failures()
            if failure is not None:
                raise failure
            return not self.store.has_pending(self.pipeline.owner or UNOWNED)

        with self._cond:
            return wait_until(self._cond, synced, timeout)

    def clear_pending(self, collection: Optional[str] = None, entity_id: Optional[str] = None) -> None:
        with self._lock:
            changed = self.store.clear_pending(collection, entity_id)
            self._refresh_collections(changed)
            self._cond.notify_all()
            self._pump()
        self._drain()

    def local_changes_applied(self, changed: Iterable[str]) -> None:
        """The store changed underneath (clear, fork): re-evaluate what depends on it."""
        with self._lock:
            self._refresh_collections(changed)
            self._pump()
        self._drain()

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
            self.store.forget_written()
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
            logger.exception("could not save query checkpoints")
            with self._lock:
                self._checkpoints_dirty = True

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._send = None
            self._wire = None
            self._out.clear()
            self._cond.notify_all()
        self.flush_checkpoints()


def _valid_timestamp(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in value[:2])
        and isinstance(value[2], str))


def _call_if_active_remote(sub: Subscription) -> None:
    if sub.active and sub.on_remote_fulfilled is not None:
        sub.on_remote_fulfilled()


def _ids_of(changes: Changes) -> IdSets:
    """The entities a change set touches, per collection."""
    return {coll: set(c.get("sets") or ()) | set(c.get("deletes") or ()) for coll, c in changes.items()}
