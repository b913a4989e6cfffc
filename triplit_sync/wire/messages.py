"""The sync wire protocol as typed data: every message of PROTOCOL.md §2, each with its JSON
payload form. Turning messages into text frames and back is ``frames.py``.

    >>> Ping(client_timestamp=1).to_payload()
    {'clientTimestamp': 1}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple, Union

from .._util.redact import REDACTED, redact
from .._util.types import Changes, QueryJSON, Timestamp
from ..errors import ProtocolError, QueryError, TriplitError, WriteError, server_error_from_json
from ._envelope import decode_changes, encode_changes
from ._inbound import sanitize_changes
from ._queryid import QUERY_ID_KEYS, query_id

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "SESSION_ERROR_TYPES",
    "NO_RETRY_CLOSE_TYPES",
    "Message",
    "Ready",
    "SchemaRequest",
    "EntityData",
    "ChangesAck",
    "ErrorMessage",
    "Close",
    "Pong",
    "Chunk",
    "ConnectQuery",
    "DisconnectQuery",
    "ChangesMessage",
    "UpdateToken",
    "SchemaResponse",
    "Ping",
    "encode_changes",
    "decode_changes",
    "query_id",
    "QUERY_ID_KEYS",
]

#: Outgoing messages whose UTF-8 size is over this many bytes are sent as CHUNK pieces (JS default).
DEFAULT_CHUNK_SIZE = 512 * 1024

#: CLOSE types the JS client reports as session errors (PROTOCOL.md §1.7).
SESSION_ERROR_TYPES = frozenset({"UNAUTHORIZED", "TOKEN_EXPIRED", "ROLES_MISMATCH", "SCHEMA_MISMATCH"})

#: CLOSE types after which a client must not reconnect by itself, whatever ``retry`` says.
NO_RETRY_CLOSE_TYPES = SESSION_ERROR_TYPES | {"INTERNAL_ERROR"}


# --------------------------------------------------------------------------------------------
# Messages


class UnknownMessageType(ProtocolError):
    """A well-formed frame of a type this client does not know (a newer server): ignorable."""


class Message:
    """Base class of every sync message; ``TYPE`` is the wire ``type``."""

    TYPE: ClassVar[str] = ""

    def to_payload(self) -> Dict[str, Any]:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "Message":  # pragma: no cover
        raise NotImplementedError


def _check(value: Any, kind: Union[type, Tuple[type, ...]], key: str, frame: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python but never a number on this wire
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ProtocolError(f"{frame} frame: {key!r} has the wrong type {type(value).__name__}")
    return value


def _req(payload: Dict[str, Any], key: str, kind: Union[type, Tuple[type, ...]], frame: str) -> Any:
    if key not in payload:
        raise ProtocolError(f"{frame} frame: payload has no {key!r}")
    return _check(payload[key], kind, key, frame)


def _opt(payload: Dict[str, Any], key: str, kind: Union[type, Tuple[type, ...]], frame: str) -> Any:
    value = payload.get(key)
    return None if value is None else _check(value, kind, key, frame)


def _timestamp(payload: Dict[str, Any], frame: str) -> Timestamp:
    ts: Timestamp = _req(payload, "timestamp", list, frame)
    # Exactly [int, int, str]: a timestamp becomes a resume checkpoint and is compared with
    # others, so a bool, a float or a negative number must never get that far.
    if len(ts) != 3 or not all(type(x) is int and x >= 0 for x in ts[:2]) or type(ts[2]) is not str:
        raise ProtocolError(
            f"{frame} frame: timestamp must be [ms, counter, clientId], got {redact(repr(ts), 80)}"
        )
    return ts


# -- server -> client


@dataclass
class Ready(Message):
    """The server accepted the connection; ``client_id`` is new on every connection."""

    TYPE: ClassVar[str] = "READY"
    client_id: str

    def to_payload(self) -> Dict[str, Any]:
        return {"clientId": self.client_id}

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "Ready":
        return cls(_req(payload, "clientId", str, cls.TYPE))


@dataclass
class SchemaRequest(Message):
    """The server wants the client's schema (only when the URL carried ``schema=``)."""

    TYPE: ClassVar[str] = "SCHEMA_REQUEST"

    def to_payload(self) -> Dict[str, Any]:
        return {}

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "SchemaRequest":
        return cls()


@dataclass
class EntityData(Message):
    """Full documents and deletes for the connection's queries; ``for_queries`` names the query
    ids (re)computed in this batch. ``changes`` uses the in-memory shape of ``_types.Changes``."""

    TYPE: ClassVar[str] = "ENTITY_DATA"
    changes: Changes
    timestamp: Timestamp
    for_queries: List[str]
    #: what was dropped from the frame on decoding (``_inbound.py``), one line per entity
    rejected: List[str] = field(default_factory=list, compare=False, repr=False)

    def to_payload(self) -> Dict[str, Any]:
        return {
            "changes": encode_changes(self.changes),
            "timestamp": self.timestamp,
            "forQueries": self.for_queries,
        }

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "EntityData":
        changes = decode_changes(_req(payload, "changes", dict, cls.TYPE), frame_type=cls.TYPE)
        for_queries = _req(payload, "forQueries", list, cls.TYPE)
        if not all(isinstance(q, str) for q in for_queries):
            raise ProtocolError(f"{cls.TYPE} frame: forQueries must hold query id strings")
        timestamp = _timestamp(payload, cls.TYPE)
        changes, rejected = sanitize_changes(changes)
        return cls(changes, timestamp, for_queries, rejected)


@dataclass
class ChangesAck(Message):
    """The last CHANGES batch was committed under ``timestamp``."""

    TYPE: ClassVar[str] = "CHANGES_ACK"
    timestamp: Timestamp

    def to_payload(self) -> Dict[str, Any]:
        return {"timestamp": self.timestamp}

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "ChangesAck":
        return cls(_timestamp(payload, cls.TYPE))


@dataclass
class ErrorMessage(Message):
    """The server's ERROR: ``message_type`` is the type of the client message that failed
    (None for an unparseable frame), ``error`` the serialized TriplitError, ``metadata`` the
    extra data (``failures`` for CHANGES, ``queryKey``/``innerError`` for CONNECT_QUERY)."""

    TYPE: ClassVar[str] = "ERROR"
    message_type: Optional[str]
    error: Dict[str, Any]
    metadata: Dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if self.message_type is not None:
            out["messageType"] = self.message_type
        out["error"] = self.error
        if self.metadata:
            out["metadata"] = self.metadata
        return out

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "ErrorMessage":
        error = payload.get("error")
        if not isinstance(error, dict):
            error = {
                "name": "TriplitError",
                "message": str(error)[:500] if error is not None else "unknown error",
            }
        metadata = payload.get("metadata")
        return cls(
            _opt(payload, "messageType", str, cls.TYPE), error, metadata if isinstance(metadata, dict) else {}
        )

    @property
    def name(self) -> str:
        """The server's error name, e.g. ``"WritePermissionError"``."""
        return str(self.error.get("name") or "TriplitError")

    @property
    def message(self) -> str:
        return str(self.error.get("message") or self.error.get("baseMessage") or self.name)

    @property
    def query_key(self) -> Optional[str]:
        """The failed query's id for a CONNECT_QUERY failure, else None."""
        key = self.metadata.get("queryKey")
        return key if isinstance(key, str) else None

    @property
    def inner_error(self) -> Optional[Dict[str, Any]]:
        """The real cause of a ``QuerySyncError`` (e.g. ``InvalidFilterError``), else None."""
        inner = self.metadata.get("innerError")
        return inner if isinstance(inner, dict) else None

    @property
    def failures(self) -> List[Dict[str, Any]]:
        """Per-collection entries ``{txId, collection, error}`` of a rejected CHANGES batch."""
        failures = self.metadata.get("failures")
        return [f for f in failures if isinstance(f, dict)] if isinstance(failures, list) else []

    @property
    def is_query_error(self) -> bool:
        return self.message_type == "CONNECT_QUERY" or self.query_key is not None

    @property
    def is_changes_error(self) -> bool:
        return self.message_type == "CHANGES"

    def to_exception(self) -> TriplitError:
        """The matching error of ``triplit_sync.errors``: a QueryError (carrying the inner cause
        and the query id) for query failures, a WriteError for rejected CHANGES, otherwise what
        ``server_error_from_json`` makes of the error."""
        status = self.error.get("status") if isinstance(self.error.get("status"), int) else None
        if self.is_query_error:
            inner = self.inner_error or self.error
            inner_status = inner.get("status") if isinstance(inner.get("status"), int) else status
            return QueryError(
                redact(str(inner.get("message") or inner.get("name") or self.message)),
                name=str(inner.get("name") or self.name),
                status=inner_status,
                data=self.to_payload(),
                query_id=self.query_key,
            )
        if self.is_changes_error:
            hint = _NO_SCHEMA_HINT if self.name in _SERIALIZATION_ERRORS else ""
            return WriteError(redact(self.message) + hint, name=self.name, status=status, data=self.error)
        return server_error_from_json(self.error)


# A client without a schema sends values as they are and leaves defaults (ids, dates) to nobody: a
# server with a schema refuses such writes with one of these, whose text does not say why.
_SERIALIZATION_ERRORS = frozenset({"DBSerializationError", "JSONSerializationError",
                                   "InvalidInsertDocumentError"})
_NO_SCHEMA_HINT = (
    " | If this client was created without schema=, pass the server's schema: "
    "TriplitClient(url, token=..., schema=...) with a schema file, a dict or a Schema; fetch the "
    "server's own with HttpClient(url, service_token).schema().")


@dataclass
class Close(Message):
    """The server is ending the session: ``type`` is UNAUTHORIZED, TOKEN_EXPIRED, ROLES_MISMATCH,
    SCHEMA_MISMATCH or INTERNAL_ERROR; ``retry`` is always false from a 1.1.8 server."""

    TYPE: ClassVar[str] = "CLOSE"
    type: str
    retry: bool = False
    message: Optional[str] = None

    def to_payload(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"type": self.type, "retry": self.retry}
        if self.message is not None:
            out["message"] = self.message
        return out

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "Close":
        retry = payload.get("retry", False)
        return cls(
            _req(payload, "type", str, cls.TYPE), retry is True, _opt(payload, "message", str, cls.TYPE)
        )

    @property
    def is_session_error(self) -> bool:
        return self.type in SESSION_ERROR_TYPES


@dataclass
class Pong(Message):
    """The reply to PING; ``client_timestamp`` echoes the PING's (None if it had none)."""

    TYPE: ClassVar[str] = "PONG"
    client_timestamp: Optional[int] = None
    server_timestamp: Optional[int] = None

    def to_payload(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if self.client_timestamp is not None:
            out["clientTimestamp"] = self.client_timestamp
        if self.server_timestamp is not None:
            out["serverTimestamp"] = self.server_timestamp
        return out

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "Pong":
        return cls(
            _opt(payload, "clientTimestamp", (int, float), cls.TYPE),
            _opt(payload, "serverTimestamp", (int, float), cls.TYPE),
        )


@dataclass
class Chunk(Message):
    """One piece of a message too large for one frame; both directions."""

    TYPE: ClassVar[str] = "CHUNK"
    id: str
    index: int
    total: int
    data: str

    def to_payload(self) -> Dict[str, Any]:
        return {"data": self.data, "total": self.total, "index": self.index, "id": self.id}

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "Chunk":
        chunk_id = _req(payload, "id", (str, int), cls.TYPE)
        index = _req(payload, "index", int, cls.TYPE)
        total = _req(payload, "total", int, cls.TYPE)
        data = _req(payload, "data", str, cls.TYPE)
        if total < 1 or not 0 <= index < total:
            raise ProtocolError(f"{cls.TYPE} frame: index {index} does not fit total {total}")
        return cls(str(chunk_id), index, total, data)


# -- client -> server


@dataclass
class ConnectQuery(Message):
    """Subscribe to ``params`` (a CollectionQuery) under ``id``; ``state`` is the optional resume
    checkpoint ``{"timestamp": [...], "entityIds": {collection: [ids]}}``."""

    TYPE: ClassVar[str] = "CONNECT_QUERY"
    id: str
    params: QueryJSON
    state: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"ConnectQuery: id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.params, Mapping) or not isinstance(self.params.get("collectionName"), str):
            raise ValueError(
                f"ConnectQuery: params must be a query with a collectionName, got {self.params!r:.120}"
            )
        if self.state is not None and not isinstance(self.state, Mapping):
            raise ValueError(
                f"ConnectQuery: state must be a mapping or None, got {type(self.state).__name__}"
            )

    def to_payload(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"id": self.id, "params": self.params}
        if self.state is not None:
            state = dict(self.state)
            ids = state.get("entityIds")
            if isinstance(ids, Mapping):
                state["entityIds"] = {
                    c: sorted(v) if isinstance(v, (set, frozenset)) else v for c, v in ids.items()
                }
            out["state"] = state
        return out

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "ConnectQuery":
        params = _req(payload, "params", dict, cls.TYPE)
        if not isinstance(params.get("collectionName"), str):
            raise ProtocolError(f"{cls.TYPE} frame: params has no collectionName")
        return cls(_req(payload, "id", str, cls.TYPE), params, _opt(payload, "state", dict, cls.TYPE))


@dataclass
class DisconnectQuery(Message):
    """Unsubscribe the query ``id`` (no reply; an unknown id is ignored)."""

    TYPE: ClassVar[str] = "DISCONNECT_QUERY"
    id: str

    def to_payload(self) -> Dict[str, Any]:
        return {"id": self.id}

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "DisconnectQuery":
        return cls(_req(payload, "id", str, cls.TYPE))


@dataclass
class ChangesMessage(Message):
    """A batch of writes; always encoded with ``changes`` and its ``meta`` markers (a CHANGES
    without them crashes a 1.1.8 server)."""

    TYPE: ClassVar[str] = "CHANGES"
    changes: Changes

    def to_payload(self) -> Dict[str, Any]:
        return {"changes": encode_changes(self.changes)}

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "ChangesMessage":
        return cls(decode_changes(_req(payload, "changes", dict, cls.TYPE), frame_type=cls.TYPE))


@dataclass
class UpdateToken(Message):
    """Extend the socket's token expiry; silent on success, CLOSE on failure. The token never
    shows in ``repr``."""

    TYPE: ClassVar[str] = "UPDATE_TOKEN"
    token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"UpdateToken(token={REDACTED!r})"

    def to_payload(self) -> Dict[str, Any]:
        return {"token": self.token}

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "UpdateToken":
        return cls(_req(payload, "token", str, cls.TYPE))


@dataclass
class SchemaResponse(Message):
    """The client's JSON schema in reply to SCHEMA_REQUEST (None: the client is schemaless)."""

    TYPE: ClassVar[str] = "SCHEMA_RESPONSE"
    schema: Optional[Dict[str, Any]] = None

    def to_payload(self) -> Dict[str, Any]:
        return {"schema": self.schema}

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "SchemaResponse":
        return cls(_opt(payload, "schema", dict, cls.TYPE))


@dataclass
class Ping(Message):
    """Keepalive; the server answers PONG (and checks the token's expiry on the way)."""

    TYPE: ClassVar[str] = "PING"
    client_timestamp: Optional[int] = None

    def to_payload(self) -> Dict[str, Any]:
        return {} if self.client_timestamp is None else {"clientTimestamp": self.client_timestamp}

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "Ping":
        return cls(_opt(payload, "clientTimestamp", (int, float), cls.TYPE))
