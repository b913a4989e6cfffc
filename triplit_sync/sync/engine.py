"""SyncEngine: joins the connection to the local database.

On top of the registry of live queries (_registry.py: one server subscription per distinct
query, shared by its subscribers), it applies ENTITY_DATA to the store and re-evaluates only
the queries whose collections changed (_views.py), keeps a resume checkpoint per query
(_checkpoints.py, PROTOCOL.md §5.5), and hands the writes to the pipeline (_pipeline.py), which keeps one CHANGES batch in flight. What goes on
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
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from .._util.callbacks import add_callback, wait_until
from .._util.timers import OneShot
from .._util.types import Changes, Timestamp
from ..errors import ProtocolError, QueryError, WriteError
from ..store.base import LocalStore
from ..wire.messages import (
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
)
from ._deletes import hold_back_deletes
from ._freshness import IdSets
from ._live import LiveQuery, QueryRunner, Subscription
from ._outcomes import WriteOutcome
from ._own_writes import OwnWrites
from ._pipeline import WritePipeline
from ._registry import QueryRegistry
from ._resume import resume_state
from ._wireorder import Intent, WireOrder
from ._wirequery import wire_query

__all__ = ["SyncEngine", "Subscription", "QueryRunner", "UNOWNED"]

logger = logging.getLogger(__name__)

#: The owner of writes made while no session exists; the next session to start adopts them.
UNOWNED = "unowned"
#: The send-order rule of PROTOCOL.md §13.2 (_wireorder.py); off only in tests of the race.
_ENFORCE_SEND_ORDER = True

_Out = Tuple[int, Message]


class SyncEngine(QueryRegistry):
    """The registry of live queries (:class:`QueryRegistry`) joined to one connection at a time."""

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
        super().__init__(store, runner, submit, checkpoints, on_checkpoints)
        #: Queries by the id their CONNECT_QUERY went out under on this connection, and how many
        #: times each query was sent on it (see _query_message).
        self._by_wire: Dict[str, LiveQuery] = {}
        self._wire_uses: Dict[str, int] = {}
        self.resume_margin_ms = int(resume_margin * 1000)
        self.ack_timeout = ack_timeout
        self._on_stall = on_stall
        # Per connection (reset by connection_ready / connection_lost):
        self._send: Optional[Callable[[Message], bool]] = None
        self._wire: Optional[WireOrder] = None
        self._out: Deque[_Out] = deque()  # decided, not sent yet (in this order)
        self._draining = False
        self._barriers = 0
        self._ack_timer = OneShot("triplit-ack-watch")
        self._changes_sent_at = 0.0  # when the CHANGES on the wire was sent
        self.pipeline = WritePipeline(store, submit, self._verify)
        #: outcomes of particular writes, their listeners, and the kept rejections
        self.own = OwnWrites(store, self._lock, submit, self.pipeline, self.write)
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

    def _want_remote(self, live: LiveQuery) -> None:
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
        if self._on_stall is None or not self.ack_timeout or self._ack_timer.pending:
            return
        self._ack_timer.schedule(self.ack_timeout, self._ack_overdue)

    def _ack_overdue(self) -> None:
        with self._lock:
            wire = self._wire
            if wire is None or not wire.changes_out or self.closed:
                return
            waited = time.monotonic() - self._changes_sent_at
            if waited < self.ack_timeout:
                # a later batch: its own deadline
                self._ack_timer.schedule(self.ack_timeout - waited, self._ack_overdue)
                return
            self._ack_timer.schedule(self.ack_timeout, self._ack_overdue)
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
        if not self.closed:
            self._checkpoints.schedule_save()

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
            newly: List[LiveQuery] = []
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
            changes, kept = hold_back_deletes(msg.changes, definitive, [q.id for q in newly],
                                              self._queries.values(), self.store, self._fresh)
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
                deliveries: List[Tuple[LiveQuery, bool]] = []
                first = {live.id for live in newly}
                for live in list(self._queries.values()):
                    if live.fulfilled:
                        self._checkpoints.record(live.id, msg.timestamp)
                    if live.id in first or (live.collections & changed):
                        if live.id in first or live.collections & probed or not self._unaffected(live, applied):
                            deliveries.append((live, live.id in first))
                    elif verified and live.fulfilled and any(live.deps.get(c, ()) and live.deps[c] & ids
                                                             for c, ids in verified.items()):
                        self._views.update_ids(live)  # now known fresh: may be listed on resume
                if deliveries or newly:
                    self._checkpoints.dirty = True
                for live, is_first in deliveries:
                    self._views.refresh(live, remote_first=is_first)
                if answered:
                    self._settle_all()
                for live in newly:
                    self._release_auto(live)
            finally:
                self._fresh.received = None
            self._cond.notify_all()
            self._pump()

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
            self._views.uncount(live)
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

    # ------------------------------------------------------------------ server subscriptions

    def _disconnect_query(self, live: "LiveQuery") -> None:
        self._views.uncount(live)
        if self._wire is not None:
            self._wire.unqueue(("q", live.id))
            self._wire.answered([live.wire_id])  # what the server still does for it touches it alone
            if live.sent:
                self._out.append((self._connection, DisconnectQuery(live.wire_id)))
            self._by_wire.pop(live.wire_id, None)
        live.sent = live.fulfilled = False

    def _resume_state(self, live: "LiveQuery") -> Optional[Dict[str, Any]]:
        """CONNECT_QUERY ``state`` for ``live`` (see _resume.py)."""
        checkpoint = self._checkpoints.get(live.id)
        known = self.store.query_ids(live.id) if checkpoint is not None else {}
        if not live.evaluated and checkpoint is None:
            self._views.evaluate(live)
        # Not evaluated yet (a resume, see subscribe): what the query matches locally beyond its
        # recorded ids is checked once the server has answered (_freshness.py).
        local = live.deps if live.evaluated else {}
        cached = {c: self.store.cached_ids(c) for c in set(known) | set(local)}
        return resume_state(live.id, checkpoint, known, local, cached, self._checkpoints.stamps,
                            self.store.query_ids, self.resume_margin_ms)

    # ------------------------------------------------------------------ writes

    def write(self, changes: Changes, *, owner: Optional[str] = None, track: bool = False,
              timeout: Optional[float] = None) -> Optional[WriteOutcome]:
        """Store encoded local changes in the outbox (durably), update views, push. ``owner``:
        whose writes they are (default: the session's); ``track``: return their outcome."""
        with self._lock:
            self.store.add_local_changes(changes, owner or self.pipeline.owner or UNOWNED)
            outcome = self.own.after_write(changes, track, timeout)
            self._refresh_collections(changes, _ids_of(changes))
            self._pump()
        self._drain()
        return outcome

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
            self.own.outbox_shrank()
            self._refresh_collections(changed)
            self._cond.notify_all()
            self._pump()
        self._drain()

    def local_changes_applied(self, changed: Iterable[str]) -> None:
        """The store changed underneath (clear, fork): re-evaluate what depends on it."""
        with self._lock:
            self.own.outbox_shrank()
            self._refresh_collections(changed)
            self._pump()
        self._drain()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._send = None
            self._wire = None
            self._out.clear()
            self._cond.notify_all()
        self._ack_timer.cancel()
        self.flush_checkpoints()
        self._checkpoints.stop()


def _ids_of(changes: Changes) -> IdSets:
    """The entities a change set touches, per collection."""
    return {coll: set(c.get("sets") or ()) | set(c.get("deletes") or ()) for coll, c in changes.items()}
