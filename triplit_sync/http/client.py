"""Request/response access to a Triplit server's HTTP API, without a live connection.

For code that does not want a socket: Django and Flask request handlers, batch jobs, admin
scripts. Every call is one POST (``GET`` for the health check) on a pooled keep-alive
connection; one :class:`HttpClient` may be shared by any number of threads.

    from triplit_sync.http import HttpClient

    with HttpClient("http://127.0.0.1:6543", token) as http:
        http.insert("todos", {"text": "buy milk", "owner": "alice"})
        todos = http.fetch({"collectionName": "todos", "where": [["owner", "=", "alice"]]})

Route facts (PROTOCOL.md §9): data routes are POST with a JSON body and a Bearer token;
results come in the server's *serialized* form (sets as arrays, dates as ISO strings); with a
schema this client turns them into Python sets and datetimes.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from .._util.rows import Rows
from .._util.types import Document, QueryJSON
from ..errors import (
    InvalidQueryError,
    ProtocolError,
    ServerError,
    TriplitConnectionError,
    TriplitTimeoutError,
)
from ..session.tokens import check_claims_path, claims_at_path, decode_claims
from ..wire.messages import encode_changes
from ._transport import DEFAULT_TIMEOUT, USE_DEFAULT, HttpTransport, check_token, dumps

__all__ = ["HttpClient", "DEFAULT_TIMEOUT"]

logger = logging.getLogger(__name__)

TokenSource = Union[str, Callable[[], Optional[str]], None]
Timeout = Optional[float]
QueryLike = Union[str, Mapping[str, Any], Any]
_DEFAULT: Any = USE_DEFAULT


def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _check_doc(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping (a dict of attributes), "
                        f"got {type(value).__name__}: {value!r:.80}")
    return value


class HttpClient:
    """A blocking client for a Triplit server's HTTP API.

    ``token`` is a JWT string, or a callable that returns the current token (or ``None`` when
    there is none), called on every request so that refreshed tokens are picked up; it may be
    ``None`` for :meth:`healthcheck` alone. The callable is called from whichever thread makes
    the request. ``schema`` is optional: a :class:`triplit_sync.schema.Schema`, its JSON dict,
    or any object with ``encode_entity(collection, entity, partial=False)`` and
    ``decode_entity(collection, doc)``. With it, results carry ``datetime`` and ``set`` values,
    inserts get their defaults filled and every value is checked before it is sent. Without
    it, results are plain JSON.

    ``claims_path`` is the server's ``claimsPath``: where tokens of an identity provider keep
    the claims the server reads. With it, :attr:`claims` shows those claims, and a token that
    has none there is refused before it is sent (the server would answer a bare 500).

    ``timeout`` (seconds, ``None`` for no limit) bounds each request's connect, read and write.
    Environment proxy settings are ignored for loopback servers (a ``HTTP_PROXY`` must not
    capture ``127.0.0.1``) and honoured for others; pass ``trust_env`` to decide yourself.

        >>> http = HttpClient("http://127.0.0.1:6543", token)                 # doctest: +SKIP
        >>> http.insert("todos", {"text": "milk", "owner": "alice"})["id"]      # doctest: +SKIP
        'k3Bf0ugFvP6uRj4w6HW2m'
        >>> http.close()                                                        # doctest: +SKIP
    """

    def __init__(
        self,
        server_url: str,
        token: TokenSource = None,
        *,
        schema: Any = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        verify: Union[bool, str] = True,
        trust_env: Optional[bool] = None,
        claims_path: Optional[str] = None,
    ) -> None:
        if token is None or callable(token):
            source: Callable[[], Optional[str]] = token if token is not None else (lambda: None)
        else:
            fixed = check_token(token)
            source = lambda: fixed  # noqa: E731
        self._claims_path = check_claims_path(claims_path)
        self._token_source = source
        if self._claims_path is not None:
            source = self._checked_token
        if isinstance(schema, (Mapping, str, os.PathLike)):
            from ..schema.model import load_schema  # only when asked: the JSON form needs the schema module

            schema = load_schema(schema)
        elif schema is not None and not (callable(getattr(schema, "encode_entity", None))
                                         and callable(getattr(schema, "decode_entity", None))):
            raise TypeError(f"schema must be a Schema (or its JSON dict), got {type(schema).__name__}")
        self._transport = HttpTransport(server_url, source, timeout=timeout, verify=verify,
                                        trust_env=trust_env)
        self._schema = schema
        self._relations: Dict[str, Dict[str, Any]] = self._read_relations(schema)
        # the transport's calls, under short names
        self._send = self._transport.send
        self._post = self._transport.post
        self._json = self._transport.json

    @property
    def claims(self) -> Optional[Dict[str, Any]]:
        """The current token's claims as the server reads them (at ``claims_path``, if set),
        unverified; ``None`` without a token. Raises TokenDecodingError for a token without them."""
        token = self._token_source()
        if token is None:
            return None
        return claims_at_path(decode_claims(token), self._claims_path)

    def _checked_token(self) -> Optional[str]:
        token = self._token_source()
        if token is not None:
            claims_at_path(decode_claims(token), self._claims_path)  # raises, naming the path
        return token

    @property
    def server_url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return self._transport.base

    @property
    def closed(self) -> bool:
        return self._transport.closed

    def close(self) -> None:
        """Close the pooled connections. Safe to call twice; later calls raise :class:`ClientClosedError`."""
        self._transport.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<HttpClient {self.server_url}{' with schema' if self._schema is not None else ''}{state}>"

    # ------------------------------------------------------------------ values

    @staticmethod
    def _read_relations(schema: Any) -> Dict[str, Dict[str, Any]]:
        to_json = getattr(schema, "to_json", None)
        if not callable(to_json):
            return {}
        collections = (to_json() or {}).get("collections") or {}
        return {name: dict(c.get("relationships") or {})
                for name, c in collections.items() if isinstance(c, Mapping)}

    def _query_json(self, query: QueryLike) -> QueryJSON:
        if isinstance(query, str):
            if not query:
                raise InvalidQueryError("a collection name must be a non-empty string, got ''")
            return {"collectionName": query}
        if not isinstance(query, Mapping):
            to_json = getattr(query, "to_json", None)
            if not callable(to_json):
                raise InvalidQueryError("query must be a Query, a CollectionQuery dict or a collection "
                                        f"name, got {type(query).__name__}: {query!r:.80}")
            query = to_json()
            if not isinstance(query, Mapping):
                raise InvalidQueryError(f"query.to_json() must return a dict, got {type(query).__name__}")
        name = query.get("collectionName")
        if not isinstance(name, str) or not name:
            raise InvalidQueryError("the query needs a 'collectionName' (a non-empty string), "
                                    f"got {dict(query)!r:.200}")
        return dict(query)

    def _subquery(self, collection: str, alias: str, inclusion: Any) -> Optional[Mapping[str, Any]]:
        """The query behind an include, as the server resolves it; ``None`` if it cannot be told."""
        if isinstance(inclusion, Mapping) and isinstance(inclusion.get("subquery"), Mapping):
            return inclusion["subquery"]  # type: ignore[no-any-return]
        relations = self._relations.get(collection) or {}
        if inclusion is None or inclusion is True:
            relation = relations.get(alias)
            extension: Mapping[str, Any] = {}
        elif isinstance(inclusion, Mapping) and isinstance(inclusion.get("_extends"), str):
            relation = relations.get(inclusion["_extends"])
            extension = {k: v for k, v in inclusion.items() if k != "_extends"}
        else:
            return None
        if not isinstance(relation, Mapping) or not isinstance(relation.get("query"), Mapping):
            return None
        return {**relation["query"], **extension}

    def _decoder(self, query: Mapping[str, Any]) -> Callable[[Any], Any]:
        """A function that turns one serialized result of ``query`` into Python values."""
        schema = self._schema
        if schema is None:
            return lambda doc: doc
        collection = query["collectionName"]
        decode_entity = schema.decode_entity
        includes = query.get("include") or {}
        if not isinstance(includes, Mapping) or not includes:
            return lambda doc: decode_entity(collection, doc) if isinstance(doc, Mapping) else doc
        subs: Dict[str, Optional[Callable[[Any], Any]]] = {}
        for alias, inclusion in includes.items():
            sub = self._subquery(collection, alias, inclusion)
            known = sub is not None and isinstance(sub.get("collectionName"), str)
            subs[alias] = self._decoder(sub) if known else None  # type: ignore[arg-type]

        def decode(doc: Any) -> Any:
            if not isinstance(doc, dict):
                return doc
            # Related entities are decoded with their own collection's codec, never the parent's.
            related = {alias: doc.pop(alias) for alias in subs if alias in doc}
            out = decode_entity(collection, doc)
            for alias, value in related.items():
                dec = subs[alias]
                if dec is None or value is None:
                    out[alias] = value
                elif isinstance(value, list):
                    out[alias] = [dec(v) for v in value]
                else:
                    out[alias] = dec(value)
            return out

        return decode

    def _encode(self, collection: str, entity: Mapping[str, Any], partial: bool) -> Any:
        if self._schema is None:
            return entity
        return self._schema.encode_entity(collection, entity, partial=partial)

    # ------------------------------------------------------------------ reads

    def fetch(self, query: QueryLike, *, timeout: Timeout = _DEFAULT) -> List[Document]:
        """The entities matching ``query``: a :class:`~triplit_sync.query.Query`, a CollectionQuery
        dict, or a collection name for all of its entities.

        Read permissions of the token's roles apply (a service token sees everything); ``select``
        trims the entities and included relations are nested under their alias keys.

            >>> http.fetch({"collectionName": "todos", "where": [["completed", "=", False]],
            ...             "order": [["created_at", "DESC"]], "limit": 10})  # doctest: +SKIP
            [{'id': 't1', 'text': 'milk', 'completed': False, ...}]

        Raises :class:`InvalidQueryError` for an unknown collection, attribute or operator.
        """
        q = self._query_json(query)
        result = self._post("fetch", {"query": q}, timeout=timeout)
        if not isinstance(result, list):
            raise ProtocolError(f"/fetch answered with {type(result).__name__}, not a list of entities",
                                status=502)
        if self._schema is None:
            return Rows(result)
        decode = self._decoder(q)
        return Rows(decode(doc) for doc in result)

    def fetch_one(self, query: QueryLike, *, timeout: Timeout = _DEFAULT) -> Optional[Document]:
        """The first entity matching ``query`` (fetched with ``limit: 1``), or ``None``.

            >>> http.fetch_one(Query("todos").order("created_at", "DESC"))  # doctest: +SKIP
        """
        q = self._query_json(query)
        q["limit"] = 1
        result = self.fetch(q, timeout=timeout)
        return result[0] if result else None

    def fetch_by_id(self, collection: str, entity_id: str, *,
                    timeout: Timeout = _DEFAULT) -> Optional[Document]:
        """The entity with this id, or ``None`` if there is none (or the token may not read it).

            >>> http.fetch_by_id("todos", "t1")  # doctest: +SKIP
            {'id': 't1', 'text': 'milk', ...}
        """
        _check_name(collection, "collection")
        _check_name(entity_id, "entity_id")
        query = {"collectionName": collection, "where": [["id", "=", entity_id]]}
        return self.fetch_one(query, timeout=timeout)

    # ------------------------------------------------------------------ writes

    def insert(self, collection: str, entity: Mapping[str, Any]) -> Document:
        """Insert one entity and return it as stored (with its id and defaults).

        An entity whose ``id`` already exists is merged into it (the server upserts).

            >>> http.insert("todos", {"text": "milk", "owner": "alice"})  # doctest: +SKIP
            {'id': 'k3Bf0u...', 'text': 'milk', 'owner': 'alice', 'completed': False, 'created_at': ...}
        """
        _check_name(collection, "collection")
        encoded = self._encode(collection, _check_doc(entity, "entity"), False)
        body = {"collectionName": collection, "entity": encoded}
        result = self._post("insert", body)
        if not isinstance(result, dict):
            raise ProtocolError(f"/insert answered with {type(result).__name__}, not the inserted entity",
                                status=502)
        return self._decoder({"collectionName": collection})(result)  # type: ignore[no-any-return]

    def bulk_insert(
        self,
        entities: Mapping[str, Sequence[Mapping[str, Any]]],
        *,
        no_return: bool = False,
        timeout: Timeout = _DEFAULT,
    ) -> Optional[Dict[str, List[Document]]]:
        """Insert many entities of several collections in one server transaction (all or nothing).

        ``entities`` maps collection names to lists of entities. Returns the inserted entities
        per collection, or ``None`` with ``no_return=True`` (faster: nothing is sent back).
        The server refuses bodies over its ``maxPayloadMb`` (100 MB by default) with
        :class:`PayloadTooLargeError`.

            >>> http.bulk_insert({"todos": [{"text": "a", "owner": "al"},
            ...                             {"text": "b", "owner": "al"}]})  # doctest: +SKIP
            {'todos': [{'id': ..., 'text': 'a', ...}, {'id': ..., 'text': 'b', ...}]}
        """
        if not isinstance(entities, Mapping):
            raise TypeError("entities must map collection names to lists of entities, "
                            f"got {type(entities).__name__}")
        body: Dict[str, List[Any]] = {}
        for collection, items in entities.items():
            _check_name(collection, "a collection name in entities")
            if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
                raise TypeError(f"entities[{collection!r}] must be a list of entities, "
                                f"got {type(items).__name__}")
            for i, entity in enumerate(items):
                _check_doc(entity, f"entities[{collection!r}][{i}]")
            if self._schema is not None:
                encode = self._schema.encode_entity
                body[collection] = [encode(collection, entity) for entity in items]
            else:
                body[collection] = list(items)
        # /bulk-insert-file rather than /bulk-insert: the same transaction, but the plain route
        # console.log()s every request body on the server (user data in its logs, and slower).
        data = dumps(body, "bulk_insert entities")
        response = self._send("POST", "bulk-insert-file", timeout=timeout,
                              params={"noReturn": "true"} if no_return else None,
                              files={"data": ("data.json", data, "application/json")})
        result = self._json("bulk-insert-file", response)
        if no_return:
            return None
        if not isinstance(result, dict):
            raise ProtocolError(f"/bulk-insert-file answered with {type(result).__name__}, "
                                "not entities by collection", status=502)
        if self._schema is None:
            return result
        out: Dict[str, List[Document]] = {}
        for collection, docs in result.items():
            decode = self._decoder({"collectionName": collection})
            out[collection] = [decode(doc) for doc in docs] if isinstance(docs, list) else docs
        return out

    def update(self, collection: str, entity_id: str, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` (a partial entity) into the entity with this id.

        Scalars and dates replace the stored value, records merge key by key, ``None`` clears an
        optional attribute. For set attributes the server *merges* too: a Python set (or list)
        adds its items, and ``{item: False}`` removes one, so ``{"tags": {"old": False, "new": True}}``
        swaps a tag. The id cannot change. A missing entity is silently left alone (the server
        answers success).

            >>> http.update("todos", "t1", {"completed": True})  # doctest: +SKIP
        """
        _check_name(collection, "collection")
        _check_name(entity_id, "entity_id")
        _check_doc(changes, "changes")
        if "id" in changes:
            raise ValueError(f"changes must not hold 'id' (an entity's id never changes), "
                             f"got {changes['id']!r}")
        body = {"collectionName": collection, "entityId": entity_id,
                "changes": self._encode(collection, changes, True)}
        self._post("update", body)

    def delete(self, collection: str, entity_id: str) -> None:
        """Delete the entity with this id (no error if there is none).

            >>> http.delete("todos", "t1")  # doctest: +SKIP
        """
        _check_name(collection, "collection")
        _check_name(entity_id, "entity_id")
        self._post("delete", {"collectionName": collection, "entityId": entity_id})

    def delete_all(self, collection: str, *, timeout: Timeout = _DEFAULT) -> int:
        """Delete every entity of one collection, in one transaction; returns how many.
        Needs a service token.

        Entities inserted by others while this runs may survive it.

            >>> http.delete_all("todos")  # doctest: +SKIP
            12
        """
        _check_name(collection, "collection")
        # Not the server's /delete-all route: in 1.1.8 it reads and deletes *with* permission
        # rules, so on a server with permissions a service token (which matches no role) deletes
        # nothing, and a missing `break` replaces any error with the /schema response. A service
        # token's /fetch and /apply-changes skip the rules, and apply-changes is one transaction.
        query = {"collectionName": collection, "select": ["id"]}
        rows = self._post("fetch", {"query": query}, timeout=timeout)
        if not isinstance(rows, list):
            raise ProtocolError(f"/fetch answered with {type(rows).__name__}, not a list of entities",
                                status=502)
        ids = {row["id"] for row in rows if isinstance(row, Mapping) and isinstance(row.get("id"), str)}
        # Sent even with no ids, so that a token without admin rights is refused every time.
        self._post("apply-changes", {"changes": encode_changes({collection: {"sets": {}, "deletes": ids}})},
                   timeout=timeout)
        return len(ids)

    def apply_changes(self, changes: Mapping[str, Mapping[str, Any]], *, timeout: Timeout = _DEFAULT) -> None:
        """Apply a batch of sets and deletes in one transaction, as a synced ``CHANGES`` would.
        Needs a service token.

        ``changes`` is ``{collection: {"sets": {id: document_or_patch}, "deletes": {id, ...}}}``:
        a document with ``"id"`` is an insert (merged into an existing entity), one without is a
        partial update of an existing entity; deletes run first. The server fills no defaults
        here: with a schema, inserts get them (and every value is encoded and checked);
        without one, documents must be complete and in the encoded form (sets as
        ``{item: true}`` maps, dates as ISO strings).

            >>> http.apply_changes({"todos": {"sets": {"t1": {"id": "t1", "text": "a", "owner": "al"}},
            ...                               "deletes": {"t0"}}})  # doctest: +SKIP
        """
        if self._schema is not None and isinstance(changes, Mapping):
            changes = {collection: self._encode_collection_changes(collection, c)
                       for collection, c in changes.items()}
        self._post("apply-changes", {"changes": encode_changes(changes)}, timeout=timeout)

    def _encode_collection_changes(self, collection: str, c: Any) -> Any:
        sets = c.get("sets") if isinstance(c, Mapping) else None
        if not isinstance(sets, Mapping):
            return c  # encode_changes names what is wrong with it
        encoded = {}
        for i, doc in sets.items():
            _check_doc(doc, f"changes[{collection!r}]['sets'][{i!r}]")
            encoded[i] = self._encode(collection, doc, "id" not in doc)
        return {**c, "sets": encoded}

    # ------------------------------------------------------------------ admin

    def schema(self) -> Optional[Dict[str, Any]]:
        """The server's schema as JSON (``{"collections": ..., "roles": ...}``), or ``None`` if it
        runs schemaless. Needs a service token.

            >>> Schema.from_json(http.schema())  # doctest: +SKIP
        """
        result = self._post("schema", {"format": "json"})
        if not isinstance(result, Mapping) or result.get("type") not in ("schema", "schemaless"):
            raise ProtocolError(f"/schema answered with something that is not a schema: {result!r:.200}",
                                status=502)
        return dict(result["schema"]) if result["type"] == "schema" else None

    def override_schema(self, schema: Any, *,
                        fail_on_backwards_incompatible_change: bool = False) -> Dict[str, Any]:
        """Replace the server's schema (a JSON dict or a ``Schema``). Needs a service token.

        The server refuses a schema that is invalid or that existing data violates, and with
        ``fail_on_backwards_incompatible_change=True`` also any backwards-incompatible change;
        a refusal raises :class:`ServerError` whose ``name`` is the server's code
        (``SCHEMA_INVALID``, ``EXISTING_DATA_MISMATCH``, ``SCHEMA_COMPATIBILITY_MISMATCH``) and
        whose ``data`` holds its ``issues``. Returns the server's report
        (``{successful, code, message, issues, diff, oldSchema, newSchema}``).

            >>> http.override_schema(new_schema,
            ...                      fail_on_backwards_incompatible_change=True)["code"]  # doctest: +SKIP
            'SUCCESS'
        """
        if not isinstance(schema, Mapping):
            to_json = getattr(schema, "to_json", None)
            if not callable(to_json):
                raise TypeError(f"schema must be a schema dict or a Schema, got {type(schema).__name__}")
            schema = to_json()
        if not isinstance(schema, Mapping) or not isinstance(schema.get("collections"), Mapping):
            raise ValueError(f"schema must have a 'collections' mapping, got {schema!r:.200}")
        body = {"schema": schema,
                "failOnBackwardsIncompatibleChange": bool(fail_on_backwards_incompatible_change)}
        result = self._post("override-schema", body)
        if not isinstance(result, dict) or "successful" not in result:
            raise ProtocolError("/override-schema answered with something that is not a report: "
                                f"{result!r:.200}", status=502)
        if not result["successful"]:
            issues = "; ".join(str(i.get("issue", i)) if isinstance(i, Mapping) else str(i)
                               for i in (result.get("issues") or [])[:5])
            message = str(result.get("message") or "the server refused the schema")
            raise ServerError(message + (f" Issues: {issues}" if issues else ""),
                              name=str(result.get("code") or "SchemaOverrideError"), data=result,
                              status=400)  # the server answers 200 with "successful": false
        return result

    def stats(self) -> Dict[str, int]:
        """The number of entities per collection. Needs a service token.

            >>> http.stats()  # doctest: +SKIP
            {'todos': 12, 'messages': 3}
        """
        result = self._post("stats", {})
        if not isinstance(result, list):
            raise ProtocolError(f"/stats answered with {type(result).__name__}, not a list", status=502)
        return {row["collection"]: row["numEntities"] for row in result
                if isinstance(row, Mapping) and "collection" in row}

    def clear_server(self, *, full: bool = False) -> None:
        """Delete every entity *on the server* (the ``/clear`` route); ``full=True`` also drops
        the schema. Needs a service token. (``TriplitClient.clear()`` empties the local cache.)

            >>> http.clear_server()  # doctest: +SKIP
        """
        self._post("clear", {"full": bool(full)})

    def clear(self, *, full: bool = False) -> None:
        """Deprecated name of :meth:`clear_server`, removed in the next release: it empties the
        server, not a local cache as ``TriplitClient.clear()`` does."""
        warnings.warn("HttpClient.clear() is deprecated: use HttpClient.clear_server(), which "
                      "says that it empties the server", DeprecationWarning, stacklevel=2)
        self.clear_server(full=full)

    def healthcheck(self, *, timeout: Timeout = _DEFAULT) -> bool:
        """``True`` if the server answers its health check; ``False`` if it is unreachable,
        times out or answers anything else. Needs no token.

            >>> HttpClient("http://127.0.0.1:6543").healthcheck()  # doctest: +SKIP
            True
        """
        try:
            self._send("GET", "healthcheck", auth=False, timeout=timeout)
        except (TriplitConnectionError, TriplitTimeoutError, ServerError) as exc:
            logger.debug("health check of %s failed: %s", self.server_url, exc)
            return False
        return True
