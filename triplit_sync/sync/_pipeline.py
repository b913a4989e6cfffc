"""The write half of the sync engine: the one CHANGES batch in flight and what its answer means.

One batch is on the wire at a time (PROTOCOL.md §6: acks carry no batch id). Three things can
go wrong with it, and each is told apart before anything is rolled back:

- **The answer was lost** (the connection or the process died after sending). On the next
  READY the batch is not simply sent again: the engine first asks the server for the batch's
  entities (a verification query). If the server already holds every write of the batch, it was
  applied and is dropped as done; otherwise it is sent again. (A write the server applied and
  another client changed since looks unapplied and is sent again: at least once, never lost.)
- **A benign conflict.** @triplit/server 1.1.8 rejects a whole batch with a generic 500 when
  it deletes an entity that is already gone (its delete-permission check reads the missing
  entity). On a generic error for a batch with deletes, the deleted entities are asked for;
  deletes of entities the server no longer has are done, so they leave the batch, and the
  rest is sent again.
- **A real rejection** (a permission rule, a schema violation). A batch of several units (see
  store/_outbox.py: the writes of one transaction, merged with every other one sharing an
  entity) is split, the older half sent first, until the rejected unit is alone; only that
  unit is rolled back and reported, everything else is sent.

Everything here runs under the engine's lock; user callbacks are handed to ``submit``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Set

from .._util.types import Changes, Document, Timestamp
from ..errors import WriteError
from ..store.base import LocalStore
from ._outcomes import OutcomeTracker, changed_keys

__all__ = ["WritePipeline", "batch_applied"]

logger = logging.getLogger(__name__)

IdSets = Dict[str, Set[str]]


def _contains(server: Any, patch: Any) -> bool:
    """Whether the server's value already holds ``patch`` (objects merge key by key)."""
    if type(patch) is dict:
        if type(server) is not dict:
            return False
        return all(_contains(server.get(k), v) for k, v in patch.items())
    return bool(server == patch)


def batch_applied(changes: Changes, get_cached: Callable[[str, str], Optional[Document]]) -> bool:
    """Whether the cache (just refreshed from the server) already shows every write of ``changes``."""
    for coll, c in changes.items():
        for eid in c["deletes"]:
            if eid not in c["sets"] and get_cached(coll, eid) is not None:
                return False
        for eid, patch in c["sets"].items():
            doc = get_cached(coll, eid)
            if doc is None or not _contains(doc, patch):
                return False
    return True


def _generic(error: WriteError) -> bool:
    """A server error that names no rule (an exception inside the server): 500 or no status."""
    return error.status is None or error.status >= 500


class WritePipeline:
    """The in-flight batch's life on one connection after another (under the engine's lock).

    ``verify(ids)`` asks the server for entities (verification queries) and returns their ids;
    the engine reports their answers to :meth:`probe_answered` / :meth:`probe_failed`.
    """

    def __init__(
        self,
        store: LocalStore,
        submit: Callable[..., None],
        verify: Callable[[IdSets], Set[str]],
    ) -> None:
        self.store = store
        self._submit = submit
        self._verify = verify
        self.owner: Optional[str] = None
        self.sent = False  # the in-flight batch went out on this connection, no answer yet
        self._waiting: Set[str] = set()  # verification ids a decision waits for
        self._probe: Optional[str] = None  # what they decide: "applied" or "deletes"
        self._error: Optional[WriteError] = None  # the generic error a deletes probe may excuse
        self._deletes_checked = False  # this batch's deletes were found to exist already
        self.failures: List[WriteError] = []  # rejections wait_for_sync has not reported yet
        self.error_callbacks: List[Callable[[WriteError], Any]] = []
        #: the outcomes of particular writes (_outcomes.py), told of every step below
        self.outcomes = OutcomeTracker(submit)
        #: called with (error, rejected changes, owner) for every rolled-back unit (_rejected.py)
        self.on_rejected: Optional[Callable[[WriteError, Changes, str], None]] = None

    # ------------------------------------------------------------------ connection

    def connection_ready(self) -> None:
        """A new connection: a batch left in flight by an earlier one is checked, not re-sent."""
        self._reset()
        inflight = self.store.inflight()
        if inflight is not None and inflight[0] == self.owner:
            self._ask("applied", _ids(inflight[1], deletes=True))

    def connection_lost(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.sent = False
        self._waiting = set()
        self._probe = None

    def _ask(self, kind: str, ids: IdSets) -> None:
        self._probe = kind
        self._waiting = self._verify(ids)
        if not self._waiting:
            self._probe = None

    # ------------------------------------------------------------------ sending

    def has_batch(self) -> bool:
        """Whether a CHANGES could go now (the wire order decides when)."""
        if self.owner is None or self.sent or self._waiting:
            return False
        inflight = self.store.inflight_owner()
        if inflight is not None:
            return inflight == self.owner
        return self.store.has_pending(self.owner)

    def take_batch(self) -> Optional[Changes]:
        if self.owner is None:
            return None
        fresh = self.store.inflight_owner() is None
        batch = self.store.next_batch(self.owner)
        if batch is not None:
            self.sent = True
            if fresh:
                self._deletes_checked = False
                self.outcomes.taken(batch)
        return batch

    # ------------------------------------------------------------------ answers

    def acked(self, timestamp: Timestamp) -> Optional[Changes]:
        """CHANGES_ACK: the batch is in the cache now. Returns it (None if nothing was in flight)."""
        self.sent = False
        inflight = self.store.inflight()
        self.store.ack_inflight(timestamp)
        if inflight is None:
            return None
        self.outcomes.succeeded(changed_keys(inflight[1]))
        return inflight[1]

    def rejected(self, error: WriteError) -> Set[str]:
        """The server refused the batch: excuse it, split it, or roll back its one unit.
        Returns the collections whose local view changed."""
        self.sent = False
        inflight = self.store.inflight()
        if inflight is None:
            logger.warning("the server rejected a write batch that is no longer in flight: %s", error.message)
            return set()
        changes = inflight[1]
        if _generic(error) and not self._deletes_checked and any(c["deletes"] for c in changes.values()):
            logger.info("the server failed a write batch with deletes (%s); checking whether the deleted "
                        "entities are already gone", error.name)
            self._error = error
            self._ask("deletes", {c: set(v["deletes"]) for c, v in changes.items() if v["deletes"]})
            return set()
        return self._split_or_reject(error)

    def _split_or_reject(self, error: WriteError) -> Set[str]:
        if self.store.split_inflight():
            kept = self.store.inflight()
            self.outcomes.split(kept[1] if kept is not None else None)
            logger.info("the server rejected a write batch (%s); sending it in smaller parts to find the "
                        "rejected writes", error.name)
            return set()
        return self._reject(error)

    def _reject(self, error: WriteError) -> Set[str]:
        owner = self.store.inflight_owner() or ""
        rejected = self.store.reject_inflight() or {}
        error.changes = rejected
        self.outcomes.rejected(rejected, error)
        if self.on_rejected is not None and rejected:
            self.on_rejected(error, rejected, owner)
        logger.warning("the server rejected writes (%s): %s", error.name, error.message)
        self.failures.append(error)
        for callback in list(self.error_callbacks):
            self._submit(callback, error)
        return set(rejected)

    def probe_answered(self, vid: str) -> Set[str]:
        """A verification this pipeline waits for was answered (the cache holds the server's
        documents now). Returns the collections whose local view changed."""
        if vid not in self._waiting:
            return set()
        self._waiting.discard(vid)
        if self._waiting:
            return set()
        kind, self._probe = self._probe, None
        inflight = self.store.inflight()
        if inflight is None:
            return set()
        changes = inflight[1]
        if kind == "applied":
            if batch_applied(changes, self.store.get_cached):
                logger.info("a write batch sent before the connection dropped had been applied; not sending it again")
                done = self.store.finish_inflight()
                self.outcomes.succeeded(changed_keys(changes))
                return done
            return set()  # has_batch() is true again: it is sent
        return self._excuse_deletes(changes)

    def _excuse_deletes(self, changes: Changes) -> Set[str]:
        error, self._error = self._error, None
        gone = {c: {i for i in v["deletes"] if self.store.get_cached(c, i) is None}
                for c, v in changes.items() if v["deletes"]}
        gone = {c: ids for c, ids in gone.items() if ids}
        if not gone:
            self._deletes_checked = True
            return self._split_or_reject(error) if error is not None else set()
        left = True
        for coll, ids in gone.items():
            logger.info("%d deleted %s entities were already gone on the server", len(ids), coll)
            left = self.store.drop_inflight_deletes(coll, ids)
        # a delete already done is a success; a re-insert after it is still in flight
        self.outcomes.succeeded({(c, i) for c, ids in gone.items() for i in ids if i not in changes[c]["sets"]})
        if not left:
            return set(gone)  # nothing else was in the batch: it is done
        self._deletes_checked = True
        return set()

    def probe_failed(self, vid: str) -> Set[str]:
        """A verification this pipeline waits for failed on the server: decide without it."""
        if vid not in self._waiting:
            return set()
        self._waiting = set()
        kind, self._probe = self._probe, None
        error, self._error = self._error, None
        if kind == "deletes" and error is not None:
            self._deletes_checked = True
            return self._split_or_reject(error)
        return set()  # "applied" unknown: send the batch again (at least once)

    # ------------------------------------------------------------------ wait_for_sync

    def take_failures(self) -> Optional[WriteError]:
        """The first unreported rejection (carrying all of them in ``failures``), or None."""
        if not self.failures:
            return None
        failures, self.failures = self.failures, []
        first = failures[0]
        if len(failures) > 1:
            first.message = f"{first.message} (and {len(failures) - 1} more rejected batches)"
            first.args = (first.message,)
        first.failures = failures
        return first


def _ids(changes: Mapping[str, Mapping[str, Any]], deletes: bool) -> IdSets:
    out: IdSets = {}
    for coll, c in changes.items():
        ids = set(c["sets"]) | (set(c["deletes"]) if deletes else set())
        if ids:
            out[coll] = ids
    return out
