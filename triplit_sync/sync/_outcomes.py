"""The outcome of particular writes: a transaction's, or one entity's, told apart from every
other write in the shared outbox.

The pipeline reports what happens to the in-flight batch (taken from the pending writes, split,
acknowledged, found applied, rejected) and the engine what vanished from the outbox (cleared,
cancelled by a later delete). Each tracked entity moves from *pending* (in a pending segment)
to *in flight* (in the batch on the wire) to settled; an outcome settles when all its entities
have. Writes to one entity merge in the outbox (PROTOCOL.md §6.1), so an entity's outcome also
waits for writes to that entity made later by others and sent in the same batch.

Everything here runs under the engine's lock; callbacks are handed to ``submit``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Literal, Mapping, Optional, Set, Tuple

from .._util.callbacks import wait_until
from .._util.timeouts import DEFAULT, TimeoutArg, resolve
from .._util.types import Changes
from ..errors import TriplitTimeoutError, WriteError

__all__ = ["OutcomeTracker", "WriteOutcome", "OutcomeStatus", "changed_keys"]

Key = Tuple[str, str]
#: ``"pending"`` until settled; ``"synced"``: the server has it; ``"rejected"``: the server
#: refused it (rolled back); ``"dropped"``: it left the outbox unsent (``clear_pending_changes``,
#: ``clear()``, or a later delete cancelled an insert that never reached the server).
OutcomeStatus = Literal["pending", "synced", "rejected", "dropped"]


def changed_keys(changes: Mapping[str, Any]) -> Set[Key]:
    """Every (collection, id) a Changes dict sets or deletes."""
    out: Set[Key] = set()
    for coll, c in changes.items():
        out.update((coll, eid) for eid in c["sets"])
        out.update((coll, eid) for eid in c["deletes"])
    return out


class WriteOutcome:
    """What became of some writes: those of one transaction (``tx.outcome``), or the pending
    writes of one entity (:meth:`TriplitClient.write_outcome`). Waiting on it never waits for
    other threads' writes to other entities.

        with client.transact() as tx:
            tx.insert("todos", {"text": "milk"})
        tx.outcome.wait(timeout=10)          # raises WriteError if the server refused it
        tx.outcome.add_done_callback(lambda outcome: print(outcome.status))
    """

    def __init__(self, keys: Iterable[Key], submit: Callable[..., None],
                 default_timeout: Optional[float] = None, settled: Optional[Tuple[str, Optional[WriteError]]] = None,
                 cond: Optional[threading.Condition] = None) -> None:
        #: the (collection, id) pairs this outcome is about
        self.keys = frozenset(keys)
        self._submit = submit
        self._default_timeout = default_timeout
        # one condition may serve many outcomes (a tracker's): a write costs no lock of its own
        self._cond = cond if cond is not None else threading.Condition()
        self._left: Set[Key] = set(self.keys)
        self._synced = 0
        self._status: OutcomeStatus = "pending"
        self._error: Optional[WriteError] = None
        self._callbacks: List[Callable[["WriteOutcome"], Any]] = []
        if not self._left:
            self._status = "synced"
        if settled is not None:  # already over: how the latest writes to these entities ended
            self._left = set()
            self._status = "rejected" if settled[1] is not None else settled[0]  # type: ignore[assignment]
            self._error = settled[1]

    @property
    def status(self) -> OutcomeStatus:
        """``"pending"``, ``"synced"``, ``"rejected"`` or ``"dropped"``."""
        with self._cond:
            return self._status

    @property
    def done(self) -> bool:
        """True once the writes are settled (synced, rejected or dropped)."""
        return self.status != "pending"

    @property
    def error(self) -> Optional[WriteError]:
        """The server's :class:`WriteError` for a rejected outcome, else ``None``."""
        with self._cond:
            return self._error

    def wait(self, timeout: TimeoutArg = DEFAULT) -> OutcomeStatus:
        """Block until the writes are settled; returns ``"synced"`` or ``"dropped"``.

        Raises the server's :class:`WriteError` if it rejected them (they are rolled back and
        listed in :meth:`TriplitClient.rejected_writes`), :class:`TriplitTimeoutError` when
        ``timeout`` passes (by default the client's ``timeout``; ``None`` waits without end).
        """
        seconds = resolve(timeout, self._default_timeout)
        with self._cond:
            if not wait_until(self._cond, lambda: self._status != "pending", seconds):
                raise TriplitTimeoutError(f"the writes were not acknowledged within {seconds} s")
            if self._error is not None:
                raise self._error
            return self._status

    def add_done_callback(self, callback: Callable[["WriteOutcome"], Any]) -> None:
        """Call ``callback(outcome)`` on the callback thread once settled (at once if it is)."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        with self._cond:
            if self._status == "pending":
                self._callbacks.append(callback)
                return
        self._submit(callback, self)

    def __repr__(self) -> str:
        return f"<WriteOutcome {len(self.keys)} entities {self.status}>"

    # ------------------------------------------------------------------ the tracker's side

    def _settle(self, key: Key, result: str, error: Optional[WriteError] = None) -> bool:
        """One entity settled; True when the whole outcome is (then callbacks are submitted)."""
        with self._cond:
            if key not in self._left or self._status != "pending":
                return False
            self._left.discard(key)
            if result == "rejected" and self._error is None:
                self._error = error
            elif result == "synced":
                self._synced += 1
            if self._left and self._error is None:
                return False
            # One transaction is one unit of the outbox: it is rejected as a whole.
            self._status = "rejected" if self._error is not None else (
                "synced" if self._synced else "dropped")
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()
        for callback in callbacks:
            self._submit(callback, self)
        return True


#: how many entities' last outcome is remembered (for write_outcome asked after the answer came)
MAX_REMEMBERED = 10_000

_Listener = Tuple[Optional[Callable[[], Any]], Optional[Callable[[WriteError], Any]]]


class OutcomeTracker:
    """Tracked entities by state, and per-entity listeners (:meth:`on_entity_sync`)."""

    def __init__(self, submit: Callable[..., None]) -> None:
        self._submit = submit
        self._pending: Dict[Key, List[WriteOutcome]] = {}
        self._inflight: Dict[Key, List[WriteOutcome]] = {}
        self._listeners: Dict[Key, List[_Listener]] = {}
        #: called with the keys whose sync state may have changed (pending <-> confirmed)
        self.watchers: List[Callable[[Set[Key]], None]] = []
        #: the last settlement of recently written entities: (status, error)
        self._last: "OrderedDict[Key, Tuple[str, Optional[WriteError]]]" = OrderedDict()
        #: shared by the outcomes this tracker makes
        self.cond = threading.Condition()

    def last(self, key: Key) -> Tuple[str, Optional[WriteError]]:
        """How the latest writes to ``key`` ended (``("synced", None)`` if not remembered)."""
        return self._last.get(key, ("synced", None))

    def _remember(self, key: Key, status: str, error: Optional[WriteError] = None) -> None:
        self._last[key] = (status, error)
        self._last.move_to_end(key)
        if len(self._last) > MAX_REMEMBERED:
            self._last.popitem(last=False)

    def __bool__(self) -> bool:
        return bool(self._pending or self._inflight or self._listeners or self.watchers)

    def track(self, outcome: WriteOutcome, pending: Iterable[Key], inflight: Iterable[Key] = ()) -> None:
        for key in pending:
            self._pending.setdefault(key, []).append(outcome)
        for key in inflight:
            self._inflight.setdefault(key, []).append(outcome)

    def listen(self, key: Key, on_success: Optional[Callable[[], Any]],
               on_error: Optional[Callable[[WriteError], Any]]) -> Callable[[], None]:
        entry: _Listener = (on_success, on_error)
        self._listeners.setdefault(key, []).append(entry)

        def remove() -> None:
            entries = self._listeners.get(key)
            if entries is not None and entry in entries:
                entries.remove(entry)
                if not entries:
                    del self._listeners[key]
        return remove

    def notify(self, keys: Set[Key]) -> None:
        if keys:
            for watcher in list(self.watchers):
                watcher(keys)

    # ------------------------------------------------------------------ events

    def taken(self, batch: Changes) -> None:
        """The owner's pending writes became the in-flight ``batch`` (a fresh promotion)."""
        if not self._pending:
            return
        for key in changed_keys(batch):
            outcomes = self._pending.pop(key, None)
            if outcomes:
                self._inflight.setdefault(key, []).extend(outcomes)

    def split(self, kept: Optional[Changes]) -> None:
        """The in-flight batch was split: what left it is pending again."""
        keep = changed_keys(kept) if kept is not None else set()
        for key in [k for k in self._inflight if k not in keep]:
            self._pending.setdefault(key, []).extend(self._inflight.pop(key))

    def succeeded(self, keys: Set[Key]) -> None:
        """These entities' in-flight writes are on the server."""
        for key in keys:
            self._remember(key, "synced")
            for outcome in self._inflight.pop(key, ()):
                outcome._settle(key, "synced")
            for on_success, _ in self._listeners.get(key, ()):
                if on_success is not None:
                    self._submit(on_success)
        self.notify(keys)

    def rejected(self, changes: Changes, error: WriteError) -> None:
        keys = changed_keys(changes)
        for key in keys:
            self._remember(key, "rejected", error)
            for outcome in self._inflight.pop(key, ()):
                outcome._settle(key, "rejected", error)
            for _, on_error in self._listeners.get(key, ()):
                if on_error is not None:
                    self._submit(on_error, error)
        self.notify(keys)

    def sweep(self, has_entry: Callable[[str, str], bool], keys: Optional[Iterable[Key]] = None) -> None:
        """Tracked entities (of ``keys``, default all) with no write left in the outbox were
        dropped unsent."""
        gone: Set[Key] = set()
        for table in (self._pending, self._inflight):
            candidates = list(table) if keys is None else [k for k in keys if k in table]
            for key in [k for k in candidates if not has_entry(*k)]:
                gone.add(key)
                self._remember(key, "dropped")
                for outcome in table.pop(key):
                    outcome._settle(key, "dropped")
        self.notify(gone)
