"""The data API of TriplitClient: queries, fetch policies, subscriptions, watch streams, writes.

An object the client owns (``TriplitClient`` calls it); it reaches the sync engine, the store
and the session through the small :class:`DataOwner` interface the client gives it, because a
fork or a slot claim replaces them.
"""

from __future__ import annotations

import copy
import threading
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Protocol,
    Set,
    Tuple,
    TypedDict,
    Union,
)

from .._util.callbacks import wait_until
from .._util.rows import Rows
from .._util.timeouts import DEFAULT, TimeoutArg, resolve
from .._util.types import Document, QueryJSON
from ..errors import (
    EntityNotFoundError,
    InvalidQueryError,
    NoActiveSessionError,
    TriplitConnectionError,
    TriplitTimeoutError,
    WriteError,
)
from ..query import Query, compile_query
from ..query._globals import bind_global_variables, normalize_global_variables
from ..schema import PLAIN, PlainCodec, Schema
from ..session import Session
from ..store import LocalStore, Segment, merge_entry, overlay
from ..sync import UNOWNED, QueryRunner, Subscription, SyncEngine, WriteOutcome
from ._data_more import DataOwner, MoreData
from ._txreads import TransactionReads

__all__ = ["DataAPI", "DataOwner", "FetchPolicy", "PendingWrite", "RowsStream", "Transaction", "FETCH_POLICIES"]

QueryArg = Union[Query, Mapping[str, Any]]
Row = Dict[str, Any]

#: How :meth:`DataAPI.fetch` chooses between the local database and the server.
FetchPolicy = Literal["local-first", "local-only", "remote-first", "local-and-remote"]
FETCH_POLICIES: Tuple[FetchPolicy, ...] = ("local-first", "local-only", "remote-first", "local-and-remote")


class PendingWrite(TypedDict):
    """One entry of :meth:`DataAPI.pending_changes`: one entity's write in one batch.

        for write in client.pending_changes():
            if write["op"] == "delete" and not write["in_flight"]:
                print("will delete", write["collection"], write["id"])
    """

    collection: str
    id: str
    #: ``"insert"`` until the server has confirmed the entity, then ``"update"``
    op: Literal["insert", "update", "delete"]
    #: what is set (the whole entity for an insert, encoded as on the wire); None for a delete
    values: Optional[Document]
    #: the identity the write belongs to
    owner: str
    #: sent, waiting for its ACK
    in_flight: bool


def _collection_names(value: Any, out: Set[str]) -> Set[str]:
    if isinstance(value, Mapping):
        name = value.get("collectionName")
        if isinstance(name, str):
            out.add(name)
        for item in value.values():
            _collection_names(item, out)
    elif isinstance(value, list):
        for item in value:
            _collection_names(item, out)
    return out


class _Runner(QueryRunner):
    """Evaluates queries over the client's store with its schema and session variables."""

    def __init__(self, data: "DataAPI") -> None:
        self._data = data
        # The engine asks again and again about the same (live) query objects: keyed by identity,
        # holding the query so the id stays its own, this skips compile_query's key (its JSON).
        self._memo: Dict[int, Tuple[QueryJSON, Any, Dict[str, Any], Any]] = {}

    def _compiled(self, query: QueryJSON) -> Any:
        session = self._data._owner.session
        claims = session.variables if session is not None else {}
        schema = self._data._schema_json
        hit = self._memo.get(id(query))
        if hit is not None and hit[0] is query and hit[1] is schema and hit[2] == claims:
            return hit[3]
        # $global: {} for references left in the query (no value, schema relations), as the server has
        compiled = compile_query(query, schema=schema, variables={"$session": claims, "$global": {}})
        if len(self._memo) >= 1024:
            self._memo.clear()
        self._memo[id(query)] = (query, schema, copy.deepcopy(claims), compiled)
        return compiled

    def run(self, query: QueryJSON) -> Tuple[List[Document], Dict[str, Set[str]]]:
        return self._compiled(query).run_with_dependencies(  # type: ignore[no-any-return]
            self._data._owner.store, copy=False)

    def collections(self, query: QueryJSON) -> Set[str]:
        return _collection_names(self._compiled(query).prepared, set())

    def unaffected(self, query: QueryJSON, deps: Dict[str, Set[str]], changed: Dict[str, Set[str]]) -> bool:
        return self._compiled(query).unaffected(self._data._owner.store, deps, changed)  # type: ignore[no-any-return]

    def decoder(self, query: QueryJSON) -> Callable[[Document], Row]:
        return self._data._codec.decoder(query["collectionName"])

    def decode(self, query: QueryJSON, rows: List[Document]) -> List[Row]:
        decode = self.decoder(query)
        return [decode(row) for row in rows]


class _ReadsOf:
    """A data API as a transaction's reads see it (``_txreads.Reader``)."""

    def __init__(self, data: "DataAPI") -> None:
        self._data = data

    def check_open(self) -> None:
        self._data._owner.check_open()

    @property
    def store(self) -> LocalStore:
        return self._data._owner.store

    def query_json(self, query: Any) -> QueryJSON:
        return self._data.query_json(query)

    def decode(self, query: QueryJSON, rows: List[Document]) -> List[Row]:
        return self._data.runner.decode(query, rows)

    def run_over(self, query: QueryJSON, source: Any) -> List[Document]:
        return self._data.runner_over(query, source)


class DataAPI:
    """Queries and writes; :class:`TriplitClient` owns one and offers each method (and those of
    its :attr:`more`, a :class:`MoreData`)."""

    def __init__(self, owner: DataOwner, schema: Optional[Schema],
                 variables: Optional[Mapping[str, Any]] = None) -> None:
        self._owner = owner
        #: the global variables, written into each query as it is fetched or subscribed
        #: (query/_globals.py: the server never sees the client's own); replaced whole, never mutated
        self.global_variables: Mapping[str, Any] = normalize_global_variables(variables)
        self._schema = schema
        #: the schema's JSON, made once: compiled queries are cached per schema object
        self._schema_json = schema.to_json() if schema is not None else None
        #: how the sync engine evaluates this client's queries
        self.runner: QueryRunner = _Runner(self)
        #: own-write outcomes, rejected writes, sync state, paged / background / changes subscriptions
        self.more = MoreData(owner, schema, self)

    def update_global_variables(self, variables: Mapping[str, Any]) -> None:
        """Replace the global variables (see ``TriplitClient.update_global_variables``)."""
        self.global_variables = normalize_global_variables(variables)

    # ------------------------------------------------------------------ queries

    @property
    def _codec(self) -> Union[Schema, PlainCodec]:
        return self._schema if self._schema is not None else PLAIN

    def query(self, collection: str) -> Query:
        """A query builder for ``collection``, checked against the client's schema.

            rows = client.fetch(client.query("todos").where("completed", "=", False).limit(10))
        """
        return Query(collection, schema=self._schema_json)

    def query_json(self, query: QueryArg) -> QueryJSON:
        """``query`` as the engine takes it: CollectionQuery JSON with the global variables
        bound, compiled once so that a bad query raises here, at the call."""
        to_json = getattr(query, "to_json", None)
        data = to_json() if callable(to_json) else query
        if not isinstance(data, Mapping) or not isinstance(data.get("collectionName"), str):
            raise InvalidQueryError(f"expected a Query or a CollectionQuery dict with a collectionName, got {query!r:.200}")
        data = bind_global_variables(data, self.global_variables)
        self._owner.engine.runner.collections(data)  # compiles it: a bad query raises here, at the call
        return data

    def fetch(self, query: QueryArg, policy: FetchPolicy = "local-first",
              timeout: TimeoutArg = DEFAULT) -> List[Row]:
        """The query's results, by ``policy``:

        - ``"local-first"``: from the local database, unless the server has never answered this
          query here (no live subscription, no checkpoint): then wait for the server;
        - ``"local-only"``: from the local database, never the network;
        - ``"remote-first"``: ask the server and wait for its answer;
        - ``"local-and-remote"``: from the local database now, refreshed from the server in the
          background, or, given a ``timeout``, after waiting up to that long for the server.

        ``timeout`` bounds every wait for the server (:class:`TriplitTimeoutError`; by default
        the client's ``timeout``, 30 s unless set; ``None`` waits without end); a query
        the server rejects raises :class:`QueryError`. Without a session, or after
        :meth:`disconnect`, ``local-first`` and ``local-and-remote`` answer locally and
        ``remote-first`` raises :class:`NoActiveSessionError` (no session) or
        :class:`TriplitConnectionError` (disconnected). While the client is reconnecting
        (server unreachable) the waits go on, up to ``timeout``.

            todos = client.fetch(client.query("todos").where("completed", "=", False))
        """
        if policy not in FETCH_POLICIES:
            raise ValueError(f"policy must be one of {', '.join(FETCH_POLICIES)}, not {policy!r}")
        explicit = timeout is not DEFAULT
        timeout = resolve(timeout, self._owner.timeout)
        self._owner.check_open()
        q = self.query_json(query)
        engine = self._owner.engine
        if policy == "local-only":
            return self._local(q)
        if policy == "local-first" and (engine.has_checkpoint(q) or not self._wants_connection()):
            return self._local(q)
        if policy == "local-and-remote":
            if not self._wants_connection():
                return self._local(q)
            if not explicit or timeout is None:
                engine.hold(q, until_fulfilled=True)  # a refresh in the background
                return self._local(q)
            live = engine.hold(q)
            try:
                engine.wait_fulfilled(live, timeout)
                return self._local(q)
            finally:
                engine.release(live)
        if self._owner.session is None:
            raise NoActiveSessionError(f"a {policy} fetch needs a connection; start a session first")
        if not self._wants_connection():
            raise TriplitConnectionError(
                f"a {policy} fetch needs a connection to {self._owner.server_url}; call connect() first")
        if policy == "remote-first" and engine.is_fulfilled(q):
            return self._local(q)  # live and answered: the server keeps these results current
        live = engine.hold(q)
        try:
            if not engine.wait_fulfilled(live, timeout):
                raise TriplitTimeoutError(f"the server did not answer the query within {timeout} s")
            return self._local(q)
        finally:
            engine.release(live)

    def runner_over(self, q: QueryJSON, source: Any) -> List[Document]:
        """Evaluate ``q`` over another source than the store (a transaction's view)."""
        assert isinstance(self.runner, _Runner)
        return self.runner._compiled(q).run(source)  # type: ignore[no-any-return]

    def _local(self, q: QueryJSON) -> List[Row]:
        rows = self._owner.engine.run_local(q)
        return Rows(self._owner.engine.runner.decode(q, rows))  # a list that Jupyter shows as a table

    def _wants_connection(self) -> bool:
        return self._owner.wants_connection()

    def fetch_one(self, query: QueryArg, policy: FetchPolicy = "local-first",
                  timeout: TimeoutArg = DEFAULT) -> Optional[Row]:
        """The first result of ``query`` or ``None``."""
        q = self.query_json(query)
        q["limit"] = 1
        rows = self.fetch(q, policy, timeout)
        return rows[0] if rows else None

    def fetch_by_id(self, collection: str, entity_id: str, policy: FetchPolicy = "local-first",
                    timeout: TimeoutArg = DEFAULT) -> Optional[Row]:
        """The entity with ``entity_id`` or ``None``.

            todo = client.fetch_by_id("todos", "t1")
        """
        if not isinstance(entity_id, str):
            raise TypeError(f"entity_id must be a string, not {type(entity_id).__name__}")
        return self.fetch_one({"collectionName": collection, "where": [["id", "=", entity_id]]}, policy, timeout)

    def subscribe(
        self,
        query: QueryArg,
        on_results: Callable[[List[Row]], Any],
        on_error: Optional[Callable[[BaseException], Any]] = None,
        *,
        local_only: bool = False,
        on_remote_fulfilled: Optional[Callable[[], Any]] = None,
    ) -> Subscription:
        """Call ``on_results(rows)`` on the callback thread now (if there are local results) and
        whenever the results change. ``on_error`` gets a :class:`QueryError` if the server cannot
        run the query; ``on_remote_fulfilled`` is called when the server has answered.

            with client.subscribe(client.query("todos"), lambda rows: print(len(rows))):
                ...
        """
        if not callable(on_results):
            raise TypeError("on_results must be callable")
        for label, cb in (("on_error", on_error), ("on_remote_fulfilled", on_remote_fulfilled)):
            if cb is not None and not callable(cb):
                raise TypeError(f"{label} must be callable")
        self._owner.check_open()
        return self._owner.engine.subscribe(self.query_json(query), on_results, on_error, local_only=local_only,
                                      on_remote_fulfilled=on_remote_fulfilled,
                                      offline=not self._wants_connection())

    def watch(self, query: QueryArg, *, timeout: Optional[float] = None, local_only: bool = False) -> "RowsStream":
        """Live results as a blocking iterator, for scripts and notebooks.

            with client.watch(client.query("todos"), timeout=30) as rows_stream:
                for rows in rows_stream:
                    print(len(rows))

        Each step waits for the next change (at most ``timeout`` seconds, then
        :class:`TriplitTimeoutError`); if several changes arrive meanwhile, only the latest
        rows are yielded.
        """
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
        return RowsStream(self, self.query_json(query), timeout, local_only)

    # ------------------------------------------------------------------ writes

    def insert(self, collection: str, entity: Mapping[str, Any]) -> Row:
        """Insert an entity (defaults filled, an id generated if missing); returns it.

        Optimistic: local queries see it at once; it is durable in the outbox before this
        returns and is sent to the server in the background (see :meth:`wait_for_sync`).

            todo = client.insert("todos", {"text": "buy milk"})
        """
        with self.transact() as tx:
            return tx.insert(collection, entity)

    def update(self, collection: str, entity_id: str,
               changes: Union[Mapping[str, Any], Callable[[Dict[str, Any]], Any]]) -> None:
        """Update an entity with a dict patch, or with a function that edits a mutable copy.

            client.update("todos", todo_id, {"completed": True})
            client.update("todos", todo_id, lambda todo: todo["tags"].add("urgent"))

        A dict patch is sent even if the entity is not in the local database (the server
        ignores updates to entities it does not have); a function needs the entity locally.
        """
        with self.transact() as tx:
            tx.update(collection, entity_id, changes)

    def delete(self, collection: str, entity_id: str) -> None:
        """Delete an entity (optimistically, like every write)."""
        with self.transact() as tx:
            tx.delete(collection, entity_id)

    def transact(self) -> "Transaction":
        """Several writes sent as one batch; nothing is written if the block raises.

            with client.transact() as tx:
                list_ = tx.insert("lists", {"name": "groceries"})
                tx.insert("todos", {"text": "milk", "list_id": list_["id"]})
        """
        self._owner.check_open()
        return Transaction(self)

    def wait_for_sync(self, timeout: TimeoutArg = DEFAULT) -> None:
        """Block until every pending write of this session is acknowledged by the server.

        Raises :class:`WriteError` (server error name, message and the rejected ``changes``)
        if the server rejected a batch since the last call, :class:`TriplitTimeoutError` when
        ``timeout`` passes (by default the client's ``timeout``; ``None`` waits without end).
        Rejected writes are rolled back locally and never retried.

            client.insert("todos", {"text": "milk"})
            client.wait_for_sync(timeout=10)
        """
        self._owner.check_open()  # (in a forked child: claims its slot first)
        timeout = resolve(timeout, self._owner.timeout)
        if not self._owner.engine.wait_for_sync(timeout):
            raise TriplitTimeoutError(f"pending writes were not acknowledged within {timeout} s")

    def pending_changes(self) -> List[PendingWrite]:
        """The writes that wait for the server, oldest first, one :class:`PendingWrite` dict per
        entity and batch: ``{"collection", "id", "op", "values", "owner", "in_flight"}``. ``op`` is ``"insert"``
        (the server has not confirmed the entity yet), ``"update"`` or ``"delete"``; ``values``
        holds what is set (the whole entity for an insert), ``None`` for a delete; ``owner`` is
        the identity the write belongs to; ``in_flight`` says it was sent and awaits its ACK.

            for write in client.pending_changes():
                print(write["op"], write["collection"], write["id"])
        """
        self._owner.check_open()
        store = self._owner.store
        out: List[PendingWrite] = []
        for entry in store.pending_changes():
            for coll, c in entry.changes.items():
                for eid, values in c["sets"].items():
                    cached = store.get_cached(coll, eid) is not None
                    op: Literal["insert", "update"] = "update" if cached else "insert"
                    out.append({"collection": coll, "id": eid, "op": op, "values": values,
                                "owner": entry.owner, "in_flight": entry.inflight})
                for eid in sorted(c["deletes"]):
                    out.append({"collection": coll, "id": eid, "op": "delete", "values": None,
                                "owner": entry.owner, "in_flight": entry.inflight})
        return out

    def on_sync_error(self, callback: Callable[[WriteError], Any]) -> Callable[[], None]:
        """Call ``callback(WriteError)`` on the callback thread when the server rejects writes.
        Returns a function that removes the callback."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._owner.check_open()
        return self._owner.engine.on_sync_error(callback)

    def clear_pending_changes(self, collection: Optional[str] = None, entity_id: Optional[str] = None) -> None:
        """Drop writes that have not been sent yet: all, a collection's, or one entity's."""
        if entity_id is not None and collection is None:
            raise ValueError("clear_pending_changes(entity_id=...) needs the collection too")
        self._owner.check_open()
        self._owner.engine.clear_pending(collection, entity_id)


class Transaction:
    """Writes collected by :meth:`DataAPI.transact`, stored and sent together on exit; reads
    (``fetch``, ``fetch_one``, ``fetch_by_id``) that see them; and, once it has ended, the
    :attr:`outcome` of its writes.

    They are merged per entity by the outbox's own rules (one outbox segment, not yet stored).
    """

    def __init__(self, client: DataAPI) -> None:
        self._client = client
        self._segment = Segment(0, UNOWNED)
        self._done = False
        self._outcome: Optional[WriteOutcome] = None
        self._reads = TransactionReads(_ReadsOf(client), self._segment)

    def fetch(self, query: Any) -> List[Row]:
        return self._reads.fetch(query)

    def fetch_one(self, query: Any) -> Optional[Row]:
        return self._reads.fetch_one(query)

    def fetch_by_id(self, collection: str, entity_id: str) -> Optional[Row]:
        return self._reads.fetch_by_id(collection, entity_id)

    fetch.__doc__ = TransactionReads.fetch.__doc__
    fetch_one.__doc__ = TransactionReads.fetch_one.__doc__
    fetch_by_id.__doc__ = TransactionReads.fetch_by_id.__doc__

    @property
    def outcome(self) -> WriteOutcome:
        """What became of this transaction's writes (:class:`WriteOutcome`): wait for it, or
        be called back, without waiting for anyone else's writes. Available once the
        ``with`` block has ended; a transaction that wrote nothing is ``"synced"`` at once, one
        whose block raised ``"dropped"``.

            with client.transact() as tx:
                tx.insert("todos", {"text": "milk"})
            tx.outcome.wait(timeout=10)
        """
        if self._outcome is None:
            raise InvalidQueryError("the outcome of a transaction is known once its with block has ended")
        return self._outcome

    def _visible(self, collection: str, entity_id: str) -> Optional[Document]:
        base = self._client._owner.store.get(collection, entity_id)
        return overlay(collection, entity_id, base, [self._segment])

    def _add(self, collection: str, entity_id: str, delete: bool, patch: Optional[Document]) -> None:
        if self._done:
            raise InvalidQueryError("this transaction has ended")
        store = self._client._owner.store
        self._segment.put(collection, entity_id, merge_entry(
            self._segment.entry(collection, entity_id), delete, patch,
            lambda: store.get(collection, entity_id) is not None))

    def insert(self, collection: str, entity: Mapping[str, Any]) -> Row:
        codec = self._client._codec
        doc = codec.encode_entity(collection, entity)
        self._add(collection, doc["id"], False, doc)
        return codec.decode_entity(collection, doc)

    def update(self, collection: str, entity_id: str,
               changes: Union[Mapping[str, Any], Callable[[Dict[str, Any]], Any]]) -> None:
        if not isinstance(entity_id, str):
            raise TypeError(f"entity_id must be a string, not {type(entity_id).__name__}")
        codec = self._client._codec
        current = self._visible(collection, entity_id)
        if callable(changes):
            if current is None:
                raise EntityNotFoundError(f"no entity {entity_id!r} in collection {collection!r} to update")
            before = codec.decode_entity(collection, current)
            after = copy.deepcopy(before)
            returned = changes(after)
            if isinstance(returned, dict):
                after = returned
            patch = _diff(before, after)
            if "id" in patch:
                raise InvalidQueryError(f"cannot change the id of {collection!r} entity {entity_id!r}")
            if not patch:
                return
        elif isinstance(changes, Mapping):
            patch = dict(changes)
            if patch.get("id", entity_id) != entity_id:
                raise InvalidQueryError(f"cannot change the id of {collection!r} entity {entity_id!r}")
            patch.pop("id", None)
        else:
            raise TypeError(f"changes must be a dict or a function, not {type(changes).__name__}")
        encoded = codec.encode_entity(collection, patch, partial=True, current=current)
        self._add(collection, entity_id, False, encoded)

    def delete(self, collection: str, entity_id: str) -> None:
        if not isinstance(entity_id, str):
            raise TypeError(f"entity_id must be a string, not {type(entity_id).__name__}")
        if self._client._schema is not None and not self._client._schema.has_collection(collection):
            raise InvalidQueryError(f"unknown collection {collection!r}")
        self._add(collection, entity_id, True, None)

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._done = True
        owner = self._client._owner
        if exc_type is None and self._segment.changes:
            self._outcome = owner.engine.write(self._segment.changes, track=True, timeout=owner.timeout)
        else:  # nothing written, or nothing kept: the block raised
            self._outcome = owner.engine.settled_outcome(owner.timeout, "synced" if exc_type is None else "dropped")


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> Dict[str, Any]:
    """The patch that turns ``before`` into ``after`` (records diffed key by key; removed -> None)."""
    patch: Dict[str, Any] = {}
    for key, value in after.items():
        old = before.get(key, _MISSING)
        if old is _MISSING or old != value:
            if isinstance(old, dict) and isinstance(value, dict):
                patch[key] = _diff(old, value)
            else:
                patch[key] = value
    for key in before:
        if key not in after:
            patch[key] = None
    return patch


_MISSING = object()


class RowsStream:
    """The iterator returned by :meth:`DataAPI.watch`; close it (or leave ``with``) to stop."""

    def __init__(self, client: DataAPI, query: QueryJSON, timeout: Optional[float], local_only: bool) -> None:
        self._cond = threading.Condition()
        self._latest: Optional[List[Row]] = None
        self._error: Optional[BaseException] = None
        self._closed = False
        self.timeout = timeout
        self._subscription = client.subscribe(query, self._on_results, self._on_error, local_only=local_only)

    def _on_results(self, rows: List[Row]) -> None:
        with self._cond:
            self._latest = rows
            self._cond.notify_all()

    def _on_error(self, error: BaseException) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def __iter__(self) -> Iterator[List[Row]]:
        return self

    def __next__(self) -> List[Row]:
        with self._cond:
            if not wait_until(self._cond, lambda: self._error is not None or self._latest is not None
                              or self._closed, self.timeout):
                raise TriplitTimeoutError(f"no new results within {self.timeout} s")
            if self._error is not None:
                raise self._error
            if self._latest is not None:
                rows, self._latest = self._latest, None
                return rows
            raise StopIteration

    def close(self) -> None:
        self._subscription.unsubscribe()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __enter__(self) -> "RowsStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
