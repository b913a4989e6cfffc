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
schema this client turns them into Python ``set``\\ s and ``datetime``\\ s.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

import httpx

from ._http_json import dumps, encode_changes, loads
from ._types import Changes, Document, QueryJSON
from .errors import (
    AuthenticationError,
    ClientClosedError,
    NoActiveSessionError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProtocolError,
    ServerError,
    TokenDecodingError,
    TriplitConnectionError,
    TriplitError,
    TriplitTimeoutError,
    server_error_from_json,
)

__all__ = ["HttpClient", "DEFAULT_TIMEOUT"]

log = logging.getLogger(__name__)

#: Seconds a request may take (connect, each read, each write) unless told otherwise.
DEFAULT_TIMEOUT = 30.0

TokenSource = Union[str, Callable[[], Optional[str]], None]
Timeout = Optional[float]
QueryLike = Union[str, Mapping[str, Any], Any]


class _UseDefault:
    def __repr__(self) -> str:
        return "<client default>"


_DEFAULT: Any = _UseDefault()

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_STATUS_CLASSES = {401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
                   413: PayloadTooLargeError}


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_timeout(timeout: Any, what: str = "timeout") -> Optional[float]:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"{what} must be a positive number of seconds or None, got {timeout!r}")
    return float(timeout)


def _check_token(token: Any) -> str:
    # Never put the token itself in a message: only its type and what is wrong with it.
    if not isinstance(token, str):
        raise TypeError(f"the token must be a str (a JWT), got {type(token).__name__}")
    if not token or not token.isascii() or any(c.isspace() or not c.isprintable() for c in token):
        raise TokenDecodingError("the token is not a JWT: it is empty or holds whitespace or control characters")
    return token


def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _check_doc(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping (a dict of attributes), got {type(value).__name__}: {value!r:.80}")
    return value


class HttpClient:
    """A blocking client for a Triplit server's HTTP API.

    ``token`` is a JWT string, or a callable that returns the current token (or ``None`` when
    there is none), called on every request so that refreshed tokens are picked up; it may be
    ``None`` for :meth:`healthcheck` alone. ``schema`` is optional: any object with
    ``encode_entity(collection, entity, partial=False)`` and ``decode_entity(collection, doc)``
    (a :class:`triplit_sync.schema.Schema`). With it, results carry ``datetime`` and ``set``
    values, inserts get their defaults filled and every value is checked before it is sent.
    Without it, results are plain JSON.

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
    ) -> None:
        self._base = self._check_url(server_url)
        if token is None or callable(token):
            self._token_source: Callable[[], Optional[str]] = token if token is not None else (lambda: None)
        else:
            fixed = _check_token(token)
            self._token_source = lambda: fixed
        if schema is not None and not (callable(getattr(schema, "encode_entity", None))
                                       and callable(getattr(schema, "decode_entity", None))):
            raise TypeError(f"schema must have encode_entity() and decode_entity() (a Schema), "
                            f"got {type(schema).__name__}")
        self._schema = schema
        self._relations: Dict[str, Dict[str, Any]] = self._read_relations(schema)
        self._timeout = _check_timeout(timeout)
        host = urlsplit(self._base).hostname or ""
        self._trust_env = (not _is_loopback(host)) if trust_env is None else bool(trust_env)
        self._verify = verify
        self._lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()
        self._client = self._new_client()

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _check_url(server_url: Any) -> str:
        if not isinstance(server_url, str):
            raise TypeError(f"server_url must be a str like 'http://127.0.0.1:6543', got {type(server_url).__name__}")
        url = server_url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme in ("ws", "wss"):  # the sync URL of the same server
            url = ("https" if parts.scheme == "wss" else "http") + url[len(parts.scheme):]
            parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server_url must be an http(s) URL like 'http://127.0.0.1:6543', got {server_url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"server_url must not hold a query, fragment or credentials, got {server_url!r}")
        try:
            parts.port
        except ValueError:
            raise ValueError(f"server_url has a bad port: {server_url!r}") from None
        return url

    def _new_client(self) -> httpx.Client:
        from . import __version__  # here, not at import time: the package imports this module

        return httpx.Client(
            timeout=httpx.Timeout(self._timeout),
            trust_env=self._trust_env,
            verify=self._verify,
            headers={"User-Agent": f"triplit-sync/{__version__} (python)", "Accept": "application/json"},
        )

    def _http(self) -> httpx.Client:
        if self._closed:
            raise ClientClosedError("this HttpClient has been closed")
        if self._pid != os.getpid():
            # A forked child must not share its parent's pooled sockets: start a fresh pool and
            # leave the parent's connections alone (closing them here would not help the parent).
            with self._lock:
                if self._pid != os.getpid():
                    self._client = self._new_client()
                    self._pid = os.getpid()
        return self._client

    @property
    def server_url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return self._base

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the pooled connections. Safe to call twice; later calls raise :class:`ClientClosedError`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            client = self._client
        client.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<HttpClient {self._base}{' with schema' if self._schema is not None else ''}{state}>"

    def _auth_header(self) -> Dict[str, str]:
        token = self._token_source()
        if token is None:
            raise NoActiveSessionError("no token: start a session or give HttpClient a token")
        return {"Authorization": "Bearer " + _check_token(token)}

    def _send(self, method: str, route: str, *, auth: bool = True, timeout: Any = _DEFAULT,
              **kwargs: Any) -> httpx.Response:
        url = f"{self._base}/{route}"
        headers = self._auth_header() if auth else {}
        if "headers" in kwargs:
            headers.update(kwargs.pop("headers"))
        if timeout is not _DEFAULT:
            kwargs["timeout"] = httpx.Timeout(_check_timeout(timeout))
        client = self._http()
        try:
            response = client.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            limit = kwargs["timeout"].read if "timeout" in kwargs else self._timeout
            raise TriplitTimeoutError(
                f"{method} {url} timed out ({type(exc).__name__}, timeout {limit} s)") from exc
        except httpx.RequestError as exc:
            raise TriplitConnectionError(f"cannot reach the Triplit server at {url}: {exc or type(exc).__name__}",
                                         name=type(exc).__name__) from exc
        except RuntimeError as exc:
            if self._closed:  # closed by another thread while this request was starting
                raise ClientClosedError("this HttpClient has been closed") from exc
            raise
        log.debug("%s %s -> %s (%d bytes)", method, url, response.status_code, len(response.content))
        if not 200 <= response.status_code < 300:
            raise self._error(method, url, response)
        return response

    @staticmethod
    def _error(method: str, url: str, response: httpx.Response) -> TriplitError:
        status = response.status_code
        data: Any = None
        try:
            data = loads(response.content)
        except ValueError:
            pass
        if isinstance(data, Mapping) and ("name" in data or "message" in data):
            return server_error_from_json(data, status)
        # Not the server's error JSON: a bare framework answer ("404 Not Found"), a proxy page, a redirect.
        text = response.text.strip().replace("\n", " ")[:300] or response.reason_phrase
        location = response.headers.get("location")
        hint = f" (redirect to {location}: use that URL as server_url)" if location else ""
        cls = _STATUS_CLASSES.get(status, ServerError)
        return cls(f"{method} {url} failed with HTTP {status}: {text}{hint}", status=status,
                   data=data if isinstance(data, Mapping) else None)

    def _post(self, route: str, body: Any, *, timeout: Any = _DEFAULT, params: Optional[Dict[str, str]] = None) -> Any:
        content = dumps(body, f"the /{route} request")
        response = self._send("POST", route, content=content, params=params, timeout=timeout,
                              headers={"Content-Type": "application/json"})
        return self._json(route, response)

    def _json(self, route: str, response: httpx.Response) -> Any:
        raw = response.content
        if not raw.strip():
            return None
        try:
            return loads(raw)
        except ValueError:
            raise ProtocolError(f"/{route} answered HTTP {response.status_code} with a body that is not JSON: "
                                f"{response.text[:200]!r}") from None

    # ------------------------------------------------------------------ values

    @staticmethod
    def _read_relations(schema: Any) -> Dict[str, Dict[str, Any]]:
        to_json = getattr(schema, "to_json", None)
        if not callable(to_json):
            return {}
        collections = (to_json() or {}).get("collections") or {}
        return {name: dict(c.get("relationships") or {}) for name, c in collections.items() if isinstance(c, Mapping)}

    def _query_json(self, query: QueryLike) -> QueryJSON:
        if isinstance(query, str):
            return {"collectionName": _check_name(query, "a collection name")}
        if not isinstance(query, Mapping):
            to_json = getattr(query, "to_json", None)
            if not callable(to_json):
                raise TypeError(f"query must be a Query, a CollectionQuery dict or a collection name, "
                                f"got {type(query).__name__}")
            query = to_json()
            if not isinstance(query, Mapping):
                raise TypeError(f"query.to_json() must return a dict, got {type(query).__name__}")
        name = query.get("collectionName")
        if not isinstance(name, str) or not name:
            raise ValueError(f"the query needs a 'collectionName' (a non-empty string), got {dict(query)!r:.200}")
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
            subs[alias] = self._decoder(sub) if sub is not None and isinstance(sub.get("collectionName"), str) else None

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
            raise ProtocolError(f"/fetch answered with {type(result).__name__}, not a list of entities")
        if self._schema is None:
            return result
        decode = self._decoder(q)
        return [decode(doc) for doc in result]

    def fetch_one(self, query: QueryLike, *, timeout: Timeout = _DEFAULT) -> Optional[Document]:
        """The first entity matching ``query`` (fetched with ``limit: 1``), or ``None``.

            >>> http.fetch_one({"collectionName": "todos", "order": [["created_at", "DESC"]]})  # doctest: +SKIP
        """
        q = self._query_json(query)
        q["limit"] = 1
        result = self.fetch(q, timeout=timeout)
        return result[0] if result else None

    def fetch_by_id(self, collection: str, entity_id: str, *, timeout: Timeout = _DEFAULT) -> Optional[Document]:
        """The entity with this id, or ``None`` if there is none (or the token may not read it).

            >>> http.fetch_by_id("todos", "t1")  # doctest: +SKIP
            {'id': 't1', 'text': 'milk', ...}
        """
        _check_name(collection, "collection")
        _check_name(entity_id, "entity_id")
        return self.fetch_one({"collectionName": collection, "where": [["id", "=", entity_id]]}, timeout=timeout)

    # ------------------------------------------------------------------ writes

    def insert(self, collection: str, entity: Mapping[str, Any]) -> Document:
        """Insert one entity and return it as stored (with its id and defaults).

        An entity whose ``id`` already exists is merged into it (the server upserts).

            >>> http.insert("todos", {"text": "milk", "owner": "alice"})  # doctest: +SKIP
            {'id': 'k3Bf0u...', 'text': 'milk', 'owner': 'alice', 'completed': False, 'created_at': ...}
        """
        _check_name(collection, "collection")
        body = {"collectionName": collection, "entity": self._encode(collection, _check_doc(entity, "entity"), False)}
        result = self._post("insert", body)
        if not isinstance(result, dict):
            raise ProtocolError(f"/insert answered with {type(result).__name__}, not the inserted entity")
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

            >>> http.bulk_insert({"todos": [{"text": "a", "owner": "al"}, {"text": "b", "owner": "al"}]})  # doctest: +SKIP
            {'todos': [{'id': ..., 'text': 'a', ...}, {'id': ..., 'text': 'b', ...}]}
        """
        if not isinstance(entities, Mapping):
            raise TypeError(f"entities must map collection names to lists of entities, got {type(entities).__name__}")
        body: Dict[str, List[Any]] = {}
        for collection, items in entities.items():
            _check_name(collection, "a collection name in entities")
            if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
                raise TypeError(f"entities[{collection!r}] must be a list of entities, got {type(items).__name__}")
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
            raise ProtocolError(f"/bulk-insert-file answered with {type(result).__name__}, not entities by collection")
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
            raise ValueError(f"changes must not hold 'id' (an entity's id never changes), got {changes['id']!r}")
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
        rows = self._post("fetch", {"query": {"collectionName": collection, "select": ["id"]}}, timeout=timeout)
        if not isinstance(rows, list):
            raise ProtocolError(f"/fetch answered with {type(rows).__name__}, not a list of entities")
        ids = {row["id"] for row in rows if isinstance(row, Mapping) and isinstance(row.get("id"), str)}
        # Sent even with no ids, so that a token without admin rights is refused every time.
        self._post("apply-changes", {"changes": encode_changes({collection: {"sets": {}, "deletes": ids}})},
                   timeout=timeout)
        return len(ids)

    def apply_changes(self, changes: Changes, *, timeout: Timeout = _DEFAULT) -> None:
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
            encoded: Dict[str, Any] = {}
            for collection, c in changes.items():
                sets = c.get("sets") if isinstance(c, Mapping) else None
                if isinstance(sets, Mapping):
                    c = dict(c)
                    c["sets"] = {i: self._encode(collection, _check_doc(doc, f"changes[{collection!r}]['sets'][{i!r}]"),
                                                 "id" not in doc)
                                 for i, doc in sets.items()}
                encoded[collection] = c
            changes = encoded  # type: ignore[assignment]
        self._post("apply-changes", {"changes": encode_changes(changes)}, timeout=timeout)

    # ------------------------------------------------------------------ admin

    def schema(self) -> Optional[Dict[str, Any]]:
        """The server's schema as JSON (``{"collections": ..., "roles": ...}``), or ``None`` if it
        runs schemaless. Needs a service token.

            >>> Schema.from_json(http.schema())  # doctest: +SKIP
        """
        result = self._post("schema", {"format": "json"})
        if not isinstance(result, Mapping) or result.get("type") not in ("schema", "schemaless"):
            raise ProtocolError(f"/schema answered with something that is not a schema: {result!r:.200}")
        return dict(result["schema"]) if result["type"] == "schema" else None

    def override_schema(self, schema: Any, *, fail_on_backwards_incompatible_change: bool = False) -> Dict[str, Any]:
        """Replace the server's schema (a JSON dict or a ``Schema``). Needs a service token.

        The server refuses a schema that is invalid or that existing data violates, and with
        ``fail_on_backwards_incompatible_change=True`` also any backwards-incompatible change;
        a refusal raises :class:`ServerError` whose ``name`` is the server's code
        (``SCHEMA_INVALID``, ``EXISTING_DATA_MISMATCH``, ``SCHEMA_COMPATIBILITY_MISMATCH``) and
        whose ``data`` holds its ``issues``. Returns the server's report
        (``{successful, code, message, issues, diff, oldSchema, newSchema}``).

            >>> http.override_schema(new_schema, fail_on_backwards_incompatible_change=True)["code"]  # doctest: +SKIP
            'SUCCESS'
        """
        if not isinstance(schema, Mapping):
            to_json = getattr(schema, "to_json", None)
            if not callable(to_json):
                raise TypeError(f"schema must be a schema dict or a Schema, got {type(schema).__name__}")
            schema = to_json()
        if not isinstance(schema, Mapping) or not isinstance(schema.get("collections"), Mapping):
            raise ValueError(f"schema must have a 'collections' mapping, got {schema!r:.200}")
        body = {"schema": schema, "failOnBackwardsIncompatibleChange": bool(fail_on_backwards_incompatible_change)}
        result = self._post("override-schema", body)
        if not isinstance(result, dict) or "successful" not in result:
            raise ProtocolError(f"/override-schema answered with something that is not a report: {result!r:.200}")
        if not result["successful"]:
            issues = "; ".join(str(i.get("issue", i)) if isinstance(i, Mapping) else str(i)
                               for i in (result.get("issues") or [])[:5])
            message = str(result.get("message") or "the server refused the schema")
            raise ServerError(message + (f" Issues: {issues}" if issues else ""),
                              name=str(result.get("code") or "SchemaOverrideError"), data=result)
        return result

    def stats(self) -> Dict[str, int]:
        """The number of entities per collection. Needs a service token.

            >>> http.stats()  # doctest: +SKIP
            {'todos': 12, 'messages': 3}
        """
        result = self._post("stats", {})
        if not isinstance(result, list):
            raise ProtocolError(f"/stats answered with {type(result).__name__}, not a list")
        return {row["collection"]: row["numEntities"] for row in result
                if isinstance(row, Mapping) and "collection" in row}

    def clear(self, *, full: bool = False) -> None:
        """Delete every entity; ``full=True`` also drops the schema. Needs a service token.

            >>> http.clear()  # doctest: +SKIP
        """
        self._post("clear", {"full": bool(full)})

    def healthcheck(self) -> bool:
        """``True`` if the server answers its health check; ``False`` if it is unreachable,
        times out or answers anything else. Needs no token.

            >>> HttpClient("http://127.0.0.1:6543").healthcheck()  # doctest: +SKIP
            True
        """
        try:
            response = self._send("GET", "healthcheck", auth=False)
        except (TriplitConnectionError, TriplitTimeoutError, ServerError) as exc:
            log.debug("health check of %s failed: %s", self._base, exc)
            return False
        return True
