"""Live queries of the sync engine: the Subscription handed to callers, the engine's record of
one distinct query (shared by its subscribers), and how the engine evaluates queries."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from .._util.types import Document, QueryJSON
from ..errors import QueryError
from ._freshness import IdSets

__all__ = ["BACKGROUND", "LiveQuery", "QueryRunner", "Subscription", "call_if_active", "call_if_active_remote"]


def BACKGROUND(rows: List[Dict[str, Any]]) -> None:
    """The ``on_results`` of a background subscription: its rows are never decoded or delivered."""


class QueryRunner:
    """How the engine evaluates queries; the client supplies one that knows the schema."""

    def run(self, query: QueryJSON) -> Tuple[List[Document], IdSets]:  # pragma: no cover - interface
        """The rows, and every (collection, id) they were built from, includes too."""
        raise NotImplementedError

    def collections(self, query: QueryJSON) -> Set[str]:  # pragma: no cover
        """Every collection whose changes can change the query's result."""
        raise NotImplementedError

    def unaffected(self, query: QueryJSON, deps: IdSets, changed: IdSets) -> bool:
        """True when changing exactly the entities in ``changed`` cannot change the results
        (whose entities were ``deps``); False means evaluate again, always safe."""
        return False

    def decoder(self, query: QueryJSON) -> Callable[[Document], Dict[str, Any]]:  # pragma: no cover
        """Wire document -> what the application sees, for the query's collection."""
        raise NotImplementedError

    def decode(self, query: QueryJSON, rows: List[Document]) -> List[Dict[str, Any]]:  # pragma: no cover
        """Wire documents -> what the application sees (datetimes, sets)."""
        raise NotImplementedError


class Subscription:
    """A live query's callbacks. ``unsubscribe()`` (or leaving its ``with`` block) ends it.

        with client.subscribe(client.query("todos"), print) as sub:
            ...
    """

    def __init__(
        self,
        live: "LiveQuery",
        on_results: Callable[[List[Dict[str, Any]]], Any],
        on_error: Optional[Callable[[BaseException], Any]],
        on_remote_fulfilled: Optional[Callable[[], Any]],
        local_only: bool,
        unsubscribe: Callable[["Subscription"], None],
    ) -> None:
        self._unsubscribe = unsubscribe
        #: The engine's record of the query (shared with other subscribers of the same query).
        self.live = live
        self.on_results = on_results
        self.on_error = on_error
        self.on_remote_fulfilled = on_remote_fulfilled
        self.local_only = local_only
        self.active = True
        #: The engine's bookkeeping: the wire rows last handed to ``on_results``, and the
        #: connection ``on_remote_fulfilled`` was last called for.
        self.delivered: Optional[List[Document]] = None
        self.fulfilled_on = 0

    @property
    def query(self) -> QueryJSON:
        return self.live.query

    @property
    def query_id(self) -> str:
        return self.live.id

    @property
    def fulfilled(self) -> bool:
        """True once the server has answered this query on the current connection."""
        return self.live.fulfilled

    @property
    def background(self) -> bool:
        """A subscription that keeps the query synced without results callbacks."""
        return self.on_results is BACKGROUND

    def unsubscribe(self) -> None:
        """Stop the callbacks; the last subscriber of a query also ends its server subscription."""
        self._unsubscribe(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        return f"<Subscription {self.live.query.get('collectionName')!r} id={self.live.id} {state}>"


class LiveQuery:
    """The engine's record of one distinct query, shared by its subscribers and fetches."""

    __slots__ = ("id", "query", "collections", "subscribers", "holds", "auto_holds", "sent", "fulfilled",
                 "error", "rows", "deps", "evaluated", "remote", "listed", "counted", "decoded", "unsettled",
                 "wire_id")

    def __init__(self, qid: str, query: QueryJSON, collections: Set[str]) -> None:
        self.id = qid
        #: The id its current CONNECT_QUERY went out under (see SyncEngine._query_message).
        self.wire_id = qid
        self.query = query
        self.collections = collections
        self.subscribers: List[Subscription] = []
        self.holds = 0  # fetches waiting for the server
        self.auto_holds = 0  # of those, background refreshes that end with the server's answer
        self.sent = False  # CONNECT_QUERY sent on this connection
        self.fulfilled = False  # answered on this connection
        self.unsettled = False  # answered, but a verification of an entity it shows is pending
        self.error: Optional[QueryError] = None
        self.rows: List[Document] = []
        self.deps: IdSets = {}
        self.evaluated = False
        self.remote = False  # wanted on the server (not only local-only subscribers)
        self.listed: IdSets = {}  # the ids its CONNECT_QUERY state listed on this connection
        self.counted = False  # its deps are counted in SyncEngine._fresh
        #: (rows, their decoded form) of the last delivery: unchanged rows are not decoded again
        self.decoded: Optional[Tuple[List[Document], List[Dict[str, Any]]]] = None

    @property
    def idle(self) -> bool:
        return not self.subscribers and self.holds == 0


def call_if_active(sub: Subscription, rows: List[Dict[str, Any]]) -> None:
    """On the callback thread: deliver rows unless the subscriber left meanwhile."""
    if sub.active:
        sub.on_results(rows)


def call_if_active_remote(sub: Subscription) -> None:
    """On the callback thread: report the server's answer unless the subscriber left meanwhile."""
    if sub.active and sub.on_remote_fulfilled is not None:
        sub.on_remote_fulfilled()
