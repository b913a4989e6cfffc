"""The data API of TriplitClient: queries, fetch policies, subscriptions, watch streams, writes.

An object the client owns (``TriplitClient`` calls it); it reaches the sync engine, the store
and the session through the small :class:`DataOwner` interface the client gives it, because a
fork or a slot claim replaces them.
"""

from __future__ import annotations

import copy
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Literal,
    Mapping,
    Optional,
    Set,
    Tuple,
    TypedDict,
    Union,
)

from .._util.rows import Rows
from .._util.timeouts import DEFAULT, TimeoutArg, resolve
from .._util.types import Document, QueryJSON
from ..errors import (
    InvalidQueryError,
    NoActiveSessionError,
    TriplitConnectionError,
    TriplitTimeoutError,
    WriteError,
)
from ..query import Query, bind_global_variables, compile_query, normalize_global_variables
from ..schema import PLAIN, PlainCodec, Schema
from ..store import LocalStore
from ..sync import QueryRunner, Subscription
from ._data_more import DataOwner, MoreData
from ._streams import RowsStream
from ._transaction import Transaction

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
        return RowsStream(self.subscribe, self.query_json(query), timeout, local_only)

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
        return Transaction(self._owner, self._codec, self._schema, _ReadsOf(self))

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
