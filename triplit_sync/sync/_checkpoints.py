"""Resume checkpoints (PROTOCOL.md §5.5): the timestamp up to which the server has sent each
query's results here, the dormant queries that keep theirs after their last user left, and
saving them to the session file at most every :data:`CHECKPOINT_INTERVAL` seconds."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional

from .._util.timers import OneShot
from .._util.types import Timestamp

__all__ = ["CHECKPOINT_INTERVAL", "MAX_DORMANT_QUERIES", "Checkpoints"]

logger = logging.getLogger(__name__)

#: Checkpoints are persisted at most this often (and on close).
CHECKPOINT_INTERVAL = 0.5
#: How many queries nobody uses any more keep their checkpoint and cached results (most
#: recently used first), so that a later fetch or subscription answers locally and resumes.
MAX_DORMANT_QUERIES = 100


class Checkpoints:
    """The checkpoints of one engine, guarded by the engine's ``lock``; ``on_save(data)`` writes
    them (``None``: nothing is persisted, e.g. memory storage)."""

    def __init__(self, stored: Optional[Mapping[str, Any]], on_save: Optional[Callable[[Dict[str, Any]], None]],
                 lock: threading.RLock) -> None:
        self._lock = lock
        self._on_save = on_save
        #: query id -> timestamp; read by resume_state for the ids other queries vouch for
        self.stamps: Dict[str, Timestamp] = {
            k: list(v["timestamp"]) for k, v in (stored or {}).items()
            if isinstance(v, Mapping) and _valid_timestamp(v.get("timestamp"))
        }
        # Queries with a checkpoint and no user (least recently used first).
        self._dormant: "OrderedDict[str, None]" = OrderedDict.fromkeys(self.stamps)
        self.dirty = False
        self._timer = OneShot("triplit-checkpoints")

    def __contains__(self, qid: object) -> bool:
        return qid in self.stamps

    def get(self, qid: str) -> Optional[Timestamp]:
        return self.stamps.get(qid)

    def record(self, qid: str, timestamp: Timestamp) -> None:
        self.stamps[qid] = list(timestamp)

    def touch(self, qid: str) -> None:
        """A dormant query was asked about: it stays longer."""
        if qid in self._dormant:
            self._dormant.move_to_end(qid)

    def wake(self, qid: str) -> None:
        """A dormant query has a user again."""
        self._dormant.pop(qid, None)

    def park(self, qid: str) -> List[str]:
        """The last user of ``qid`` left: it stays dormant. Returns the queries now forgotten:
        ``qid`` itself if it has no checkpoint, else the least recently used beyond the limit."""
        if qid not in self.stamps:
            return [qid]
        self._dormant[qid] = None
        self._dormant.move_to_end(qid)
        forgotten = []
        while len(self._dormant) > MAX_DORMANT_QUERIES:
            oldest, _ = self._dormant.popitem(last=False)
            forgotten.append(oldest)
        return forgotten

    def discard(self, qid: str) -> None:
        if self.stamps.pop(qid, None) is not None:
            self.dirty = True

    def clear(self) -> List[str]:
        """Forget every checkpoint; returns the query ids that had one."""
        qids = list(self.stamps)
        self.stamps.clear()
        self._dormant.clear()
        self.dirty = True
        return qids

    def snapshot(self) -> Dict[str, Any]:
        return {qid: {"timestamp": list(ts)} for qid, ts in self.stamps.items()}

    # ------------------------------------------------------------------ saving

    def schedule_save(self) -> None:
        """Save within :data:`CHECKPOINT_INTERVAL` if they changed (one pending save at a time)."""
        if self._on_save is None:
            return
        with self._lock:
            if self.dirty and not self._timer.pending:
                self._timer.schedule(CHECKPOINT_INTERVAL, self.flush)

    def flush(self) -> None:
        """Persist the checkpoints now, if they changed (after the store committed)."""
        self._timer.cancel()  # a pending save would find nothing new
        with self._lock:
            if not self.dirty or self._on_save is None:
                return
            self.dirty = False
            data = self.snapshot()
        try:
            self._on_save(data)
        except Exception:
            logger.exception("could not save query checkpoints")
            with self._lock:
                self.dirty = True

    def stop(self) -> None:
        self._timer.cancel()


def _valid_timestamp(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in value[:2])
        and isinstance(value[2], str))
