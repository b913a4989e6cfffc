"""Hostile frames through a fake server (tests/support/fakeserver.py): the reader must survive them all.

A client with the sample schema subscribes to ``todos`` through a scripted peer that answers
like a server (READY, ENTITY_DATA for each CONNECT_QUERY, CHANGES_ACK for each CHANGES, PONG)
and, in between, sends generated hostile frames (tests/faults/hostile_gen.py). After every
few frames a valid canary entity is sent: if it does not reach the subscription, the reader
is dead or stuck (a reader death); the client is then disconnected and connected again so the
run goes on. A client that closes the connection itself (a frame it cannot trust) is fine:
the peer accepts the next connection. At the end:

- 0 reader deaths and 0 exceptions on background threads;
- 0 malformed values in the cache: every cached document is a dict whose ``id`` is its
  non-empty string key, every entity timestamp and resume checkpoint is
  ``[int >= 0, int >= 0, str]`` (values of the wrong type for the schema are counted apart:
  DESIGN.md keeps them, shown as stored);
- a local fetch works, an insert reaches the peer and is acknowledged, a remote fetch answers;
- RSS grows by less than ``HELD_BOUND_MB``, right after 16 unfinished 8 MB chunks and at the
  end (malloc is told to return large blocks, so RSS shows what is held).
"""

from __future__ import annotations

import datetime
import gc
import itertools
import json
import logging
import random
import socket
import struct
import threading
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from websockets.exceptions import ConnectionClosed

from tests.support.fakeserver import FakeConnection, FakeServer
from triplit_sync import TriplitClient
from triplit_sync.testing import mint_token

from . import hostile_gen
from .common import SCHEMA, Deadline, Result, ThreadErrors, rss_mb

# RSS growth of this process (the fake server is in it too), with malloc told to give large
# blocks back (_release_freed_memory): a client that held every unfinished chunk would grow by
# 16 x 8 MB = 128 MB and more; DESIGN.md bounds them at 64 MiB.
HELD_BOUND_MB = 96


def _release_freed_memory() -> None:
    """Make glibc serve blocks of 128 KiB and more by mmap, always (its threshold otherwise
    rises after the first large free, and freed 8 MB strings stay in RSS): so RSS measures what
    is held, not what was once used. Elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass
CANARY_EVERY = 10


class Peer:
    """Plays the server's side of every connection the client makes to ``server``."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.cond = threading.Condition()
        self.conn: Optional[FakeConnection] = None
        self.connections = 0
        self.query_ids: Set[str] = set()
        self.written: Set[str] = set()  # entity ids the client sent in CHANGES
        self.sent_total = 0
        self.send_failures = 0
        self.state: Dict[str, Dict[str, Any]] = {}  # canaries: what a server would hold and resend
        self._stop = threading.Event()
        self._clock = 1_800_000_000_000
        self._send_lock = threading.Lock()
        threading.Thread(target=self._accept, name="faults-peer-accept", daemon=True).start()

    def timestamp(self) -> List[Any]:
        with self.cond:
            self._clock += 1
            return [self._clock, 0, "server"]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self.server.accept(timeout=0.5)
            except AssertionError:
                continue
            # A send into a connection the client dropped but did not close blocks once the
            # window fills: give up after 2 s (counted as a connection the client closed).
            try:
                conn.ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 2, 0))
            except OSError:
                pass
            with self.cond:
                self.conn = conn
                self.connections += 1
                self.cond.notify_all()
            self.send(json.dumps({"type": "READY", "payload": {"clientId": f"fake{self.connections}"}}), conn)
            threading.Thread(target=self._serve, args=(conn,), name="faults-peer", daemon=True).start()

    def _serve(self, conn: FakeConnection) -> None:
        while not self._stop.is_set():
            try:
                raw = conn.ws.recv(1.0)
            except TimeoutError:
                continue
            except (ConnectionClosed, OSError):
                return
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            mtype, payload = msg.get("type"), msg.get("payload") or {}
            if mtype == "CONNECT_QUERY":
                with self.cond:
                    self.query_ids.add(payload["id"])
                    self.cond.notify_all()
                with self.cond:
                    held = [[k, v] for k, v in self.state.items()]
                self.send(hostile_gen.entity_data(payload["id"], held, timestamp=self.timestamp()), conn)
            elif mtype == "DISCONNECT_QUERY":
                with self.cond:
                    self.query_ids.discard(payload.get("id"))
            elif mtype == "CHANGES":
                for c in (payload.get("changes", {}).get("json") or {}).values():
                    with self.cond:
                        self.written.update(k for k, _ in c.get("sets") or [])
                        self.written.update(c.get("deletes") or [])
                        self.cond.notify_all()
                self.send(json.dumps({"type": "CHANGES_ACK", "payload": {"timestamp": self.timestamp()}}), conn)
            elif mtype == "PING":
                pong = {"clientTimestamp": payload.get("clientTimestamp"), "serverTimestamp": int(time.time() * 1000)}
                self.send(json.dumps({"type": "PONG", "payload": pong}), conn)

    def send(self, frame: Any, conn: Optional[FakeConnection] = None) -> bool:
        target = conn or self.conn
        if target is None:
            return False
        with self._send_lock:
            try:
                if isinstance(frame, bytes):
                    target.send_bytes(frame)
                else:
                    target.send_text(frame)
                self.sent_total += 1
                return True
            except (ConnectionClosed, OSError, RuntimeError, TimeoutError):
                self.send_failures += 1
                return False

    def wait(self, pred: Any, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def stop(self) -> None:
        self._stop.set()


class Latest:
    """``on_results`` that keeps only the latest rows (a Collector keeping every delivery would
    hold ~1 000 x 1 000 rows over a full run and be measured as the client's memory)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.rows: List[Dict[str, Any]] = []
        self.count = 0
        self.errors = 0

    def __call__(self, rows: List[Dict[str, Any]]) -> None:
        with self.cond:
            self.rows, self.count = rows, self.count + 1
            self.cond.notify_all()

    def on_error(self, error: BaseException) -> None:
        with self.cond:
            self.errors += 1

    def has(self, eid: str, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: any(r.get("id") == eid for r in self.rows), timeout)


class LoggedErrors(logging.Handler):
    """Records the library's ERROR logs (an exception caught on the reader thread shows here)
    while installed; they do not reach the other handlers, the figures report them."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: List[str] = []
        self._logger = logging.getLogger("triplit_sync")
        self._saved = (self._logger.level, self._logger.propagate)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage()[:160])

    def __enter__(self) -> "LoggedErrors":
        self._logger.addHandler(self)
        self._logger.setLevel(logging.ERROR)
        self._logger.propagate = False
        return self

    def __exit__(self, *exc: Any) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._saved[0])
        self._logger.propagate = self._saved[1]


def _bad_timestamp(value: Any) -> bool:
    return not (isinstance(value, list) and len(value) == 3 and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in value[:2]) and isinstance(value[2], str))


def malformed_values(client: TriplitClient) -> Tuple[List[str], List[str]]:
    """(malformed shapes, schema-violating values) in the client's local state. Shapes: a
    cached document that is not a dict whose ``id`` is its non-empty string key, a bad entity
    timestamp or checkpoint. A value of the wrong type for the schema is kept and shown as
    stored (DESIGN.md "Hostile frames"): counted apart, not a failure, while reads work."""
    store, bad, off_schema = client._store, [], []  # type: ignore[var-annotated]
    for coll in store.collections():
        for eid in store.cached_ids(coll):
            doc = store.get_cached(coll, eid)
            if not isinstance(eid, str) or not eid:
                bad.append(f"{coll}: id {eid!r}")
            if not isinstance(doc, dict) or doc.get("id") != eid:
                bad.append(f"{coll}/{eid!r}: document {doc!r:.80}")
                continue
            ets = store.entity_timestamp(coll, eid)
            if ets is not None and _bad_timestamp(ets):
                bad.append(f"{coll}/{eid}: timestamp {ets!r}")
            if coll == "todos":
                for attr, types in (("text", (str,)), ("owner", (str,)), ("completed", (bool,))):
                    if doc.get(attr) is not None and not isinstance(doc[attr], types):
                        off_schema.append(f"todos/{eid}: {attr}={doc[attr]!r:.40}")
                created = doc.get("created_at")
                if created is not None:
                    try:
                        datetime.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
                        if not isinstance(created, str):
                            raise ValueError
                    except ValueError:
                        off_schema.append(f"todos/{eid}: created_at={created!r:.40}")
    for qid, cp in client._engine._checkpoints.stamps.items():
        if _bad_timestamp(cp):
            bad.append(f"checkpoint {qid}: {cp!r}")
    return bad, off_schema


def run(quick: bool = True, seed: int = 1) -> Result:
    n_frames, big_chunks = (600, 16) if quick else (10_000, 16)
    max_deaths = 8 if quick else 100  # each costs a reconnect (and up to 2 s); past this the answer is known
    res = Result("hostile frames through a fake server", "quick" if quick else "full")
    deadline = Deadline(60 if quick else 1200)
    rng = random.Random(seed)
    started = time.monotonic()
    kinds: Dict[str, int] = {}
    deaths = 0
    death_kinds: Dict[str, int] = {}
    canaries = 0
    closed_by_client = 0
    lost = 0
    late = 0  # canaries not shown in time because the client was still waiting out its backoff
    held_after_chunks = held_end = 0.0
    with ThreadErrors() as thread_errors, LoggedErrors() as logged, FakeServer() as server:
        peer = Peer(server)
        client = TriplitClient(server.url, token=mint_token("not-checked", sub="mallory"), schema=SCHEMA,
                               storage="memory", ping_interval=None)
        rows = Latest()
        sub = client.subscribe({"collectionName": "todos"}, rows, rows.on_error)
        if not peer.wait(lambda: bool(peer.query_ids), 10):
            res.failures.append("the client never sent its CONNECT_QUERY")
        _release_freed_memory()
        gc.collect()
        rss0 = rss_mb()
        qid = next(iter(peer.query_ids), "q")
        # Made one at a time as they are sent: holding the 8 MB frames here would be measured as RSS.
        big = (("unfinished 8 MB chunk", hostile_gen.big_unfinished_chunk(i)) for i in range(big_chunks))
        stream = itertools.chain(big, hostile_gen.frames(rng, qid, n_frames))
        total = big_chunks + n_frames
        window: Dict[str, int] = {}  # the kinds sent since the last canary (or death)
        errors_seen = len(thread_errors.errors)  # background exceptions before this window
        for i, (kind, frame) in enumerate(stream):
            if deadline.over:
                res.failures.append(f"out of time after {i} of {total} frames")
                break
            if deaths + lost >= max_deaths:
                res.failures.append(f"stopped after {deaths} reader deaths and {lost} lost canaries, "
                                    f"at frame {i} of {total}")
                break
            kinds[kind] = kinds.get(kind, 0) + 1
            window[kind] = window.get(kind, 0) + 1
            connections = peer.connections
            alive = True
            if not peer.send(frame):
                # The connection is gone: the client closed it (a frame it could not trust),
                # which is fine if it connects again; a dead reader never does.
                closed_by_client += 1
                alive = peer.wait(lambda: peer.connections > connections, 3)
            if alive and ((i + 1) % CANARY_EVERY == 0 or i == total - 1):
                canaries += 1
                alive = _canary(client, peer, rows, qid, f"canary{i}", thread_errors)
            if not alive:
                if len(thread_errors.errors) > errors_seen:
                    deaths += 1  # the reader thread raised: it is gone
                    for k in window:
                        death_kinds[k] = death_kinds.get(k, 0) + 1
                    if deaths <= 2:
                        res.failures.append(f"reader death after frame {i}: {thread_errors.errors[-1][:160]}")
                elif client.connection_status.value != "OPEN":
                    # Bad frames back off like failed connects (up to backoff_max): a client
                    # still waiting to reconnect is slow, not broken; the checks at the end
                    # (fetch, insert + ack, remote fetch) prove it recovers.
                    late += 1
                else:
                    lost += 1  # the reader lives, but the subscription no longer shows new data
                    if lost <= 2:
                        res.failures.append(f"canary lost after frame {i} (reader alive, no exception escaped; "
                                            f"status {client.connection_status.value}, "
                                            f"{peer.connections} connections so far); "
                                            f"library errors logged so far: {sorted(set(logged.messages))[:2]}")
                connections = peer.connections
                client.disconnect()  # the reader is gone: a new connection, so the run goes on
                client.connect()
                peer.wait(lambda: peer.connections > connections, 10)
                qid = _current_qid(peer, qid)
            if i == big_chunks - 1:  # every unfinished chunk sent: what does the client hold now?
                alive = alive and _canary(client, peer, rows, qid, "after-chunks", thread_errors)
                gc.collect()
                held_after_chunks = rss_mb() - rss0
            if not alive or (i + 1) % CANARY_EVERY == 0:
                window = {}
                errors_seen = len(thread_errors.errors)
        gc.collect()
        rss1 = rss_mb()
        held_end = rss1 - rss0
        bad, off_schema = malformed_values(client)
        try:
            local = client.fetch({"collectionName": "todos"}, policy="local-only")
            fetch_ok = isinstance(local, list)
        except Exception as e:  # a schema-violating value must not break every read
            fetch_ok = False
            res.failures.append(f"local fetch raised {type(e).__name__}: {str(e)[:200]}")
        written_ok = _still_writes(client, peer, res)
        try:
            client.fetch({"collectionName": "todos", "where": [["owner", "=", "nobody"]]}, policy="remote-first",
                         timeout=10)
            remote_ok = True
        except Exception as e:
            remote_ok = False
            res.failures.append(f"remote fetch after the frames raised {type(e).__name__}: {str(e)[:200]}")
        sub.unsubscribe()
        client.close()
        peer.stop()
    res.figures["frames sent"] = sum(kinds.values())
    res.figures["by kind"] = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    res.figures["canaries"] = canaries
    res.figures["reader deaths"] = deaths
    res.figures["canaries lost (reader alive)"] = lost
    res.figures["canaries late (client still in reconnect backoff after 35 s)"] = late
    res.figures["library errors logged"] = f"{len(logged.messages)}: " + "; ".join(sorted(set(logged.messages))[:3])
    res.figures["deaths: windows holding a frame of kind"] = ", ".join(
        f"{k} {v}" for k, v in sorted(death_kinds.items())) or "none"
    distinct = {e.split(": ", 1)[1][:90] for e in thread_errors.errors}
    res.figures["distinct background exceptions"] = sorted(distinct)[:5]
    res.figures["connections the client closed itself"] = closed_by_client
    res.figures["connections"] = peer.connections
    res.figures["exceptions on background threads"] = len(thread_errors.errors)
    res.figures["malformed values in the cache"] = len(bad)
    res.figures["schema-violating values kept, shown as stored"] = len(off_schema)
    res.figures["local fetch / insert+ack / remote fetch after"] = f"{fetch_ok} / {written_ok} / {remote_ok}"
    res.figures["RSS growth after the unfinished chunks"] = \
        f"{held_after_chunks:.0f} MB ({big_chunks} x {hostile_gen.CHUNK_MB} MB sent; bound {HELD_BOUND_MB} MB)"
    res.figures["RSS growth at the end"] = f"{held_end:.0f} MB (bound {HELD_BOUND_MB} MB)"
    res.check(deaths == 0, f"reader deaths: {deaths} (want 0)")
    res.check(lost == 0, f"canaries lost with the reader alive: {lost} (want 0)")
    res.check(not thread_errors.errors, f"exceptions on background threads: {thread_errors.errors[:3]}")
    res.check(not bad, f"malformed values in the cache: {len(bad)}, e.g. {bad[:4]}")
    res.check(fetch_ok and written_ok and remote_ok, "the client no longer works normally after the frames")
    res.check(held_after_chunks < HELD_BOUND_MB and held_end < HELD_BOUND_MB,
              f"RSS grew by {held_after_chunks:.0f} MB after the unfinished chunks, {held_end:.0f} MB at the end "
              f"(bound {HELD_BOUND_MB} MB)")
    res.seconds = time.monotonic() - started
    return res


def _current_qid(peer: Peer, old: str) -> str:
    with peer.cond:
        return old if old in peer.query_ids or not peer.query_ids else next(iter(peer.query_ids))


def _canary(client: TriplitClient, peer: Peer, rows: Latest, qid: str, eid: str, errors: ThreadErrors,
            timeout: float = 5.0) -> bool:
    """Send a valid entity; True once the subscription shows it (through this connection or,
    if the client dropped it, the answer to its resumed query on the next). A new exception on
    a background thread ends the wait at once (the reader died), so deaths cost little time."""
    qid = _current_qid(peer, qid)
    doc = hostile_gen.good_doc(eid)
    with peer.cond:
        peer.state[eid] = doc  # answered again to the next CONNECT_QUERY if this connection is dropped
    peer.send(hostile_gen.entity_data(qid, [[eid, doc]], timestamp=peer.timestamp()))
    n_errors = len(errors.errors)
    end = time.monotonic() + timeout
    # A client waiting out its reconnect backoff (bad frames back off like failed connects,
    # up to backoff_max = 30 s) gets that long: it is not a lost canary.
    # Once it is connected again, its resumed query still needs an answer: `timeout` more.
    backoff_end = time.monotonic() + 35
    while time.monotonic() < end or (client.connection_status.value != "OPEN" and time.monotonic() < backoff_end):
        if rows.has(eid, 0.1):
            return True
        if len(errors.errors) > n_errors:
            return False
        if client.connection_status.value != "OPEN":
            end = max(end, time.monotonic() + timeout)
    return False


def _still_writes(client: TriplitClient, peer: Peer, res: Result) -> bool:
    eid = f"after-{time.monotonic_ns()}"
    try:
        client.insert("todos", {"id": eid, "text": "still writes", "owner": "mallory"})
        client.wait_for_sync(10)
    except Exception as e:
        res.failures.append(f"insert after the frames: {type(e).__name__}: {str(e)[:200]}")
        return False
    return eid in peer.written
