"""When a CHANGES and a CONNECT_QUERY may go out on one connection (PROTOCOL.md §13.2).

The server handles every message of one TCP read at once, interleaved at each ``await``. A
CONNECT_QUERY handled together with a CHANGES answers from the views *before* the write, and
for a query that carries resume ``state`` the write's own re-evaluation is then dropped: an
entity that write deleted is sent as it was and stays in the client's results for good. A
stateless query gets the write's diff later, but until then the local view is stale, which a
client promising read-your-writes cannot show either. So, for every CONNECT_QUERY:

1. it goes only while no CHANGES waits for its CHANGES_ACK or ERROR;
2. a CHANGES goes only once every CONNECT_QUERY sent before it has been answered. After each
   group of CONNECT_QUERY the engine sends a PING, the *barrier*, whose PONG proves the server
   has read the group; a query that carries resume ``state`` must also have had its first
   ENTITY_DATA (or ERROR): the server answers a PING at once, while the first answer of a
   stateful query awaits once per listed id, so a PONG can overtake it (seen in a convergence
   run: a CHANGES sent right after the PONG had its diff dropped and left a stale value).

When both wait, queries and writes take turns, so neither starves the other; after READY the
queries go first. DISCONNECT_QUERY and PING are safe at any time. :class:`WireOrder` only
decides (it is plain state, guarded by the engine's lock); the engine builds and sends.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, List, Optional, Set, Tuple

__all__ = ["WireOrder", "Intent"]

#: A query the engine wants on the wire: ``("q", query id)`` or ``("v", verification id)``.
Intent = Tuple[str, str]


class WireOrder:
    """The send-order state of one connection.

    ``enforce=False`` turns the rule off (messages go as soon as they are decided, as the
    official JS client sends them); only tests that reproduce the server race use it.
    """

    __slots__ = ("enforce", "changes_out", "barrier", "last", "_queued", "unanswered")

    def __init__(self, enforce: bool = True) -> None:
        self.enforce = enforce
        self.changes_out = False  # a CHANGES is on the wire, not answered yet
        self.barrier: Optional[int] = None  # marker of the barrier PING whose PONG is awaited
        # Which kind went last: after READY, queries go first (without the rule, writes go
        # first, as the official JS client sends them).
        self.last = "changes" if enforce else "queries"
        self._queued: "OrderedDict[Intent, None]" = OrderedDict()
        #: Stateful CONNECT_QUERY ids sent whose first ENTITY_DATA or ERROR has not come.
        self.unanswered: Set[str] = set()

    @property
    def queued(self) -> bool:
        return bool(self._queued)

    def queue(self, intent: Intent) -> None:
        self._queued[intent] = None

    def unqueue(self, intent: Intent) -> None:
        self._queued.pop(intent, None)

    def may_send_queries(self, writes_waiting: bool) -> bool:
        if not self._queued:
            return False
        if not self.enforce:
            return not (writes_waiting and self.last == "queries")
        return not self.changes_out and not (writes_waiting and self.last == "queries")

    def may_send_changes(self) -> bool:
        if self.changes_out:
            return False
        if not self.enforce:
            return True
        return self.barrier is None and not self.unanswered and not (self._queued and self.last == "changes")

    def take_queued(self) -> List[Intent]:
        intents = list(self._queued)
        self._queued.clear()
        return intents

    def sent_stateful(self, query_id: str) -> None:
        if self.enforce:
            self.unanswered.add(query_id)

    def answered(self, query_ids: Iterable[str]) -> bool:
        """Queries had their first answer; True when that lets a CHANGES go."""
        if not self.unanswered:
            return False
        before = len(self.unanswered)
        self.unanswered.difference_update(query_ids)
        return len(self.unanswered) < before and not self.unanswered and self.barrier is None

    def pong(self, marker: int) -> bool:
        """A barrier's PONG arrived; True when it was the one awaited (CHANGES may go)."""
        if self.barrier == marker:
            self.barrier = None
            return True
        return False
