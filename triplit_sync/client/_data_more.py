"""The data API beyond queries and writes: the outcome of one's own writes, rejected writes to
retry, sync state, background, paginated and expanding subscriptions, changes instead of
snapshots, the schema. :class:`~triplit_sync.client.data.DataAPI` owns one :class:`MoreData`
(``data.more``), and gives it the queries part it builds on (:class:`Queries`).
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Protocol, Union

from ..errors import WriteError
from ..query import Query
from ..schema import Schema
from ..session import Session
from ..store import LocalStore
from ..sync import BACKGROUND, RejectedWrite, Subscription, SyncEngine, WriteOutcome
from ._changes import ChangesStream, RowChanges, changes_callback
from ._pages import ExpandingSubscription, Page, PagedSubscription, page_size_of
from ._status import QueryState, StatusSubscription

__all__ = ["DataOwner", "MoreData", "Queries", "QueryArg"]

QueryArg = Union[Query, Mapping[str, Any]]


class DataOwner(Protocol):
    """What the data API needs of the client that owns it. ``store``, ``engine`` and
    ``session`` are read at every call: a fork or a slot claim replaces them."""

    @property
    def server_url(self) -> str: ...
    @property
    def timeout(self) -> Optional[float]: ...
    @property
    def store(self) -> LocalStore: ...
    @property
    def engine(self) -> SyncEngine: ...
    @property
    def session(self) -> Optional[Session]: ...
    def wants_connection(self) -> bool:
        """A session exists and wants the server (also while waiting out a reconnect backoff)."""
    def check_open(self) -> None:
        """Raise for a closed client (in a forked child: claim its slot first)."""


def _check_callable(**callbacks: Any) -> None:
    for label, cb in callbacks.items():
        if cb is not None and not callable(cb):
            raise TypeError(f"{label} must be callable")


class Queries(Protocol):
    """What these methods build on: the data API's own queries and subscriptions."""

    def query_json(self, query: QueryArg) -> Any: ...

    def subscribe(self, query: QueryArg, on_results: Callable[[List[Any]], Any],
                  on_error: Optional[Callable[[BaseException], Any]] = None, *, local_only: bool = False,
                  on_remote_fulfilled: Optional[Callable[[], Any]] = None) -> Subscription: ...


class MoreData:
    """See the module docstring; each method is offered by :class:`TriplitClient` too."""

    def __init__(self, owner: DataOwner, schema: Optional[Schema], queries: Queries) -> None:
        self._owner, self._schema, self._queries = owner, schema, queries

    # ------------------------------------------------------------------ own writes

    def write_outcome(self, collection: str, entity_id: str) -> WriteOutcome:
        """The :class:`WriteOutcome` of the writes to this entity that wait for the server now;
        when none do (the answer came already), how the latest of them ended (``"synced"``,
        ``"rejected"`` with its error, ``"dropped"``; ``"synced"`` for an entity not written
        recently). Waiting on it does not wait for other entities' writes, which
        ``wait_for_sync`` does; later writes to the same entity that go out in the same batch
        are waited for too (the outbox merges them). ``tx.outcome`` is exact for one transaction.

            todo = client.insert("todos", {"text": "milk"})
            client.write_outcome("todos", todo["id"]).wait(timeout=10)  # WriteError if refused
        """
        if not isinstance(entity_id, str):
            raise TypeError(f"entity_id must be a string, not {type(entity_id).__name__}")
        self._owner.check_open()
        return self._owner.engine.own.entity_outcome(collection, entity_id, self._owner.timeout)

    def on_entity_sync(self, collection: str, entity_id: str, on_success: Optional[Callable[[], Any]] = None,
                       on_error: Optional[Callable[[WriteError], Any]] = None) -> Callable[[], None]:
        """Call ``on_success()`` each time a write to this entity reaches the server and
        ``on_error(WriteError)`` each time one is rejected (JS ``onEntitySyncSuccess`` /
        ``onEntitySyncError``; deletes count too, unlike JS). On the callback thread; returns a
        function that removes the callbacks.

            stop = client.on_entity_sync("todos", "t1", on_success=lambda: print("saved"))
        """
        _check_callable(on_success=on_success, on_error=on_error)
        self._owner.check_open()
        return self._owner.engine.own.on_entity_sync(collection, entity_id, on_success, on_error)

    def rejected_writes(self) -> List[RejectedWrite]:
        """The writes the server rejected, oldest first (the newest 100 are kept, in the local
        database: with durable storage they survive a restart). Each was rolled back; call its
        ``retry()`` once the reason has gone away (a permission granted later), or ``discard()``.

            for rejected in client.rejected_writes():
                if rejected.name == "WritePermissionError":
                    rejected.retry().wait(timeout=10)
        """
        self._owner.check_open()
        return self._owner.engine.own.rejections.list()

    # ------------------------------------------------------------------ sync state

    def is_pending(self, collection: str, entity_id: str) -> bool:
        """Whether a write to this entity waits for the server (pending or in flight).

            [t for t in client.fetch(q) if not client.is_pending("todos", t["id"])]  # confirmed only
        """
        self._owner.check_open()
        return bool(self._owner.store.has_outbox_entry(collection, entity_id))

    def subscribe_with_status(self, query: QueryArg, on_state: Callable[[QueryState], Any], *,
                              local_only: bool = False) -> StatusSubscription:
        """Call ``on_state(QueryState)`` on the callback thread with the results and their sync
        state: ``status`` (``"loading"`` until the server answered, ``"fulfilled"``,
        ``"error"``), ``error``, and ``pending`` (the ids of rows whose writes wait for the
        server). It is called again whenever any of them changes, also when only a row's write
        was acknowledged. Unlike JS, the status does not go back to loading on a reconnect: the
        results are still there and are resumed.

            with client.subscribe_with_status(client.query("todos"), print) as sub:
                print(sub.state.status)
        """
        _check_callable(on_state=on_state)
        if on_state is None:
            raise TypeError("on_state must be callable")
        q = self._queries.query_json(query)
        store_of = self._owner
        status = StatusSubscription(q["collectionName"], on_state,
                                    lambda c, i: store_of.store.has_outbox_entry(c, i), local_only)
        engine = self._owner.engine
        status.stop_with(engine.own.watch_sync_state(status.on_sync_state))
        try:
            sub = self._queries.subscribe(q, status.on_results, status.on_error, local_only=local_only,
                                 on_remote_fulfilled=status.on_remote_fulfilled)
        except BaseException:
            status.unsubscribe()
            raise
        status.stop_with(sub.unsubscribe)
        return status

    # ------------------------------------------------------------------ more subscriptions

    def subscribe_background(self, query: QueryArg, *, on_fulfilled: Optional[Callable[[], Any]] = None,
                             on_error: Optional[Callable[[BaseException], Any]] = None) -> Subscription:
        """Keep a query synced from the server into the local database, without results
        callbacks (its rows are never decoded or delivered), for later ``local-only`` fetches
        and subscriptions (JS ``subscribeBackground``). ``on_fulfilled`` is called when the
        server has answered (on every connection), ``on_error`` if it refuses the query.

            bg = client.subscribe_background(client.query("todos").where("owner", "=", "alice"))
            ...
            rows = client.fetch(q, policy="local-only")
            bg.unsubscribe()
        """
        _check_callable(on_fulfilled=on_fulfilled, on_error=on_error)
        return self._queries.subscribe(query, BACKGROUND, on_error, on_remote_fulfilled=on_fulfilled)

    def subscribe_changes(self, query: QueryArg, on_changes: Callable[[RowChanges], Any],
                          on_error: Optional[Callable[[BaseException], Any]] = None, *, local_only: bool = False,
                          on_remote_fulfilled: Optional[Callable[[], Any]] = None) -> Subscription:
        """Like :meth:`subscribe`, but ``on_changes(RowChanges)`` gets what was ``added``,
        ``changed`` and ``removed`` since the previous call (and ``rows``, all results now);
        the first call has every row in ``added``. Rows are matched by ``id``.

            def mirror(changes):
                for row in changes.added + changes.changed:
                    upsert(row)
                for row in changes.removed:
                    remove(row["id"])

            client.subscribe_changes(client.query("todos"), mirror)
        """
        _check_callable(on_changes=on_changes)
        if on_changes is None:
            raise TypeError("on_changes must be callable")
        return self._queries.subscribe(query, changes_callback(on_changes), on_error, local_only=local_only,
                              on_remote_fulfilled=on_remote_fulfilled)

    def watch_changes(self, query: QueryArg, *, timeout: Optional[float] = None,
                      local_only: bool = False) -> ChangesStream:
        """:meth:`watch` yielding :class:`RowChanges`: what changed since the previous step
        (changes that arrived meanwhile are summed up, none is lost).

            with client.watch_changes(client.query("todos"), timeout=60) as stream:
                for changes in stream:
                    print(len(changes.added), len(changes.changed), len(changes.removed))
        """
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
        return ChangesStream(self._queries.subscribe, self._queries.query_json(query), timeout, local_only)

    def subscribe_pages(self, query: QueryArg, on_page: Callable[[Page], Any],
                        on_error: Optional[Callable[[BaseException], Any]] = None, *,
                        page_size: Optional[int] = None) -> PagedSubscription:
        """A live query one page at a time (JS ``subscribeWithPagination``): ``on_page(Page)``
        gets the page's ``rows``, ``has_next``, ``has_previous`` and ``number`` whenever they
        change; ``next_page()`` / ``previous_page()`` move. ``page_size`` defaults to the
        query's ``limit``. Pages are cut by cursor (the order values of a boundary row, with
        ``id`` added as the last order key) and held from their start, also when reached going
        back (JS holds a page reached going back from its end): a page does not shift when rows
        before it come or go, a row deleted in it is replaced by the next one, and going back to
        fewer rows than a page shows the first page, full.

            pages = client.subscribe_pages(client.query("todos").order("created_at", "DESC"),
                                           lambda page: print(page.number, len(page.rows)), page_size=20)
            pages.next_page()
        """
        _check_callable(on_page=on_page, on_error=on_error)
        q = self._queries.query_json(query)
        size = page_size_of(q, page_size)
        store_of = self._owner
        return PagedSubscription(self._queries.subscribe, q, size, on_page, on_error,
                                 lambda c, i: store_of.store.get(c, i))

    def subscribe_expanding(self, query: QueryArg, on_results: Callable[[Page], Any],
                            on_error: Optional[Callable[[BaseException], Any]] = None, *,
                            page_size: Optional[int] = None) -> ExpandingSubscription:
        """A live query that grows on demand (JS ``subscribeWithExpand``): ``on_results(Page)``
        gets the first ``page_size`` rows (default: the query's ``limit``) and ``has_next``
        (more rows exist); ``load_more()`` adds a page, all of it live.

            feed = client.subscribe_expanding(client.query("todos").order("created_at", "DESC"),
                                              lambda page: print(len(page.rows)), page_size=50)
            feed.load_more()
        """
        _check_callable(on_results=on_results, on_error=on_error)
        q = self._queries.query_json(query)
        return ExpandingSubscription(self._queries.subscribe, q, page_size_of(q, page_size), on_results, on_error)

    # ------------------------------------------------------------------ schema

    def get_schema(self) -> Optional[Schema]:
        """The client's schema (a :class:`Schema`; ``.to_json()`` gives the server's JSON form),
        or ``None`` for a schemaless client.

            schema = client.get_schema()
            print(schema.to_json()["collections"].keys() if schema else "schemaless")
        """
        return self._schema
