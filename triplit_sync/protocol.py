"""The sync wire protocol as typed data: every message, the SuperJSON ``changes`` envelope,
CHUNK framing, query ids and token redaction. Pure functions and data, no I/O.

Facts come from PROTOCOL.md §2 (messages), §3.1 (envelope) and §5.2 (query ids).

    >>> text = encode_message(Ping(client_timestamp=1))
    >>> text
    '{"type":"PING","payload":{"clientTimestamp":1}}'
    >>> decode_message('{"type":"READY","payload":{"clientId":"c1"}}')
    Ready(client_id='c1')
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
    Type,
    Union,
)

from ._hash import hash_object
from ._types import Changes, QueryJSON, Timestamp
from .errors import ProtocolError, QueryError, TriplitError, WriteError, server_error_from_json

try:  # orjson is optional ("fast" extra); the stdlib json is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only without orjson
    _orjson = None

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
    "decode_message",
    "encode_message",
    "encode_frames",
    "encode_changes",
    "decode_changes",
    "chunk_message",
    "ChunkAssembler",
    "query_id",
    "redact",
]

#: Outgoing messages whose UTF-8 size is over this many bytes are sent as CHUNK pieces (JS default).
DEFAULT_CHUNK_SIZE = 512 * 1024

#: CLOSE types the JS client reports as session errors (PROTOCOL.md §1.7).
SESSION_ERROR_TYPES = frozenset({"UNAUTHORIZED", "TOKEN_EXPIRED", "ROLES_MISMATCH", "SCHEMA_MISMATCH"})

#: CLOSE types after which a client must not reconnect by itself, whatever ``retry`` says.
NO_RETRY_CLOSE_TYPES = SESSION_ERROR_TYPES | {"INTERNAL_ERROR"}


# --------------------------------------------------------------------------------------------
# JSON


def _reject(value: Any) -> Any:
    raise TypeError(f"value of type {type(value).__name__} is not JSON serializable: {value!r:.80}")


if _orjson is not None:
    # Passthrough flags make orjson refuse what the stdlib would refuse (datetimes, dataclasses),
    # so the wire never depends on which library happens to be installed.
    _ORJSON_OPTS = (
        _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_SUBCLASS
    )
    _loads: Callable[[Union[str, bytes]], Any] = _orjson.loads

    def _dumps_bytes(obj: Any) -> bytes:
        return _orjson.dumps(obj, default=_reject, option=_ORJSON_OPTS)

else:  # pragma: no cover - exercised only without orjson
    _loads = json.loads
    _compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_reject)

    def _dumps_bytes(obj: Any) -> bytes:
        return _compact.encode(obj).encode("utf-8")


# --------------------------------------------------------------------------------------------
# Redaction

_REDACTED = "<redacted>"
# A JWT's header is base64url JSON, so it starts with "eyJ" ('{"'); JWE tokens have more segments.
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*)*")
_TOKEN_PARAM_RE = re.compile(r"(?i)([?&;]token=)[^&#\s'\"]*")
_TOKEN_FIELD_RE = re.compile(r"(?i)(\"token\"\s*:\s*\")(?:[^\"\\]|\\.)*")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")


def redact(text: Any, limit: Optional[int] = None) -> str:
    """Replace anything that may be a token (JWTs, ``token=`` URL parameters, ``"token"`` JSON
    fields, bearer headers) with a placeholder; optionally cut the result to ``limit`` characters.

    Cutting happens after redaction, so a token is never left half-visible by the cut.

        >>> redact("ws://h?sync-schema=false&token=abc.def")
        'ws://h?sync-schema=false&token=<redacted>'
    """
    s = text if isinstance(text, str) else str(text)
    if limit is not None and len(s) > limit + 4096:
        s = s[: limit + 4096]  # tokens are far shorter than the margin
    s = _JWT_RE.sub(_REDACTED, s)
    s = _TOKEN_PARAM_RE.sub(r"\1" + _REDACTED, s)
    s = _TOKEN_FIELD_RE.sub(r"\1" + _REDACTED, s)
    s = _BEARER_RE.sub(r"\1" + _REDACTED, s)
    if limit is not None and len(s) > limit:
        s = s[:limit] + f"...[{len(s) - limit} more chars]"
    return s


def _excerpt(data: Union[str, bytes], limit: int = 200) -> str:
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data[: limit + 4096]).decode("utf-8", "replace")
    return redact(data, limit)


# --------------------------------------------------------------------------------------------
# The SuperJSON envelope of DBChanges


def _escape_path_segment(key: str) -> str:
    # superjson 2.x (meta "v": 1) escapes backslashes as well as dots in path segments.
    if "\\" in key or "." in key:
        return key.replace("\\", "\\\\").replace(".", "\\.")
    return key


def encode_changes(changes: Mapping[str, Mapping[str, Any]]) -> Dict[str, Any]:
    """The SuperJSON ``{json, meta}`` form of in-memory changes (see ``_types.Changes``).

    Every collection gets its ``map``/``set`` markers and ``meta.v`` is 1, so the server turns
    ``sets`` back into a Map and ``deletes`` into a Set. Raises ``TypeError``/``ValueError``
    naming the collection when the input does not have the documented shape.

        >>> encode_changes({"todos": {"sets": {"t1": {"id": "t1"}}, "deletes": set()}})["meta"]
        {'values': {'todos.sets': ['map'], 'todos.deletes': ['set']}, 'v': 1}
    """
    if not isinstance(changes, Mapping):
        raise TypeError(f"changes must be a mapping of collection name to changes, not {type(changes).__name__}")
    body: Dict[str, Any] = {}
    values: Dict[str, List[str]] = {}
    for coll, c in changes.items():
        if not isinstance(coll, str) or not coll:
            raise ValueError(f"changes: collection name must be a non-empty string, got {coll!r}")
        if not isinstance(c, Mapping):
            raise TypeError(f"changes[{coll!r}] must be a mapping with 'sets' and 'deletes', not {type(c).__name__}")
        sets = c.get("sets") or {}
        deletes = c.get("deletes") or ()
        if not isinstance(sets, Mapping):
            raise TypeError(f"changes[{coll!r}]['sets'] must map entity id to document, not {type(sets).__name__}")
        if isinstance(deletes, (str, bytes)) or not isinstance(deletes, Iterable):
            raise TypeError(f"changes[{coll!r}]['deletes'] must be a set of entity ids, not {type(deletes).__name__}")
        delete_list = list(deletes)
        for i in delete_list:
            if not isinstance(i, str):
                raise TypeError(f"changes[{coll!r}]['deletes'] holds a non-string id {i!r}")
        for i in sets:
            if not isinstance(i, str):
                raise TypeError(f"changes[{coll!r}]['sets'] holds a non-string id {i!r}")
        # Tuples serialize as JSON arrays; list(items()) avoids building one list per entity.
        body[coll] = {"sets": list(sets.items()), "deletes": sorted(delete_list)}
        key = _escape_path_segment(coll)
        values[key + ".sets"] = ["map"]
        values[key + ".deletes"] = ["set"]
    return {"json": body, "meta": {"values": values, "v": 1}}


def decode_changes(envelope: Any, *, frame_type: str = "CHANGES") -> Changes:
    """In-memory changes from a SuperJSON ``{json, meta}`` envelope.

    ``sets`` become ``{id: document}`` dicts (the documents are the decoded JSON objects
    themselves, not copies) and ``deletes`` become sets. Nested value annotations in ``meta``
    (``["map", {...}]``) are accepted and ignored: entity values on the wire are already encoded.
    Raises :class:`ProtocolError` naming ``frame_type`` and the collection on a malformed envelope.
    """
    if not isinstance(envelope, dict):
        raise ProtocolError(f"{frame_type} frame: changes must be an object, got {type(envelope).__name__}")
    body = envelope.get("json")
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ProtocolError(f"{frame_type} frame: changes.json must be an object, got {type(body).__name__}")
    meta = envelope.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise ProtocolError(f"{frame_type} frame: changes.meta must be an object, got {type(meta).__name__}")
    out: Changes = {}
    for coll, c in body.items():
        if not isinstance(c, dict):
            raise ProtocolError(f"{frame_type} frame: changes for collection {coll!r} must be an object")
        sets = c.get("sets")
        deletes = c.get("deletes")
        try:
            if sets is None:
                set_map: Dict[str, Any] = {}
            elif type(sets) is list:
                set_map = dict(sets)  # [[id, doc], ...] -> {id: doc} at C speed
            elif type(sets) is dict:
                set_map = sets
            else:
                raise TypeError(type(sets).__name__)
        except (TypeError, ValueError) as e:
            raise ProtocolError(
                f"{frame_type} frame: sets of collection {coll!r} must be a list of [id, document] pairs ({e})"
            ) from None
        try:
            delete_set = set() if deletes is None else set(deletes) if type(deletes) is list else None
        except TypeError:
            delete_set = None
        if delete_set is None:
            raise ProtocolError(f"{frame_type} frame: deletes of collection {coll!r} must be a list of ids")
        out[coll] = {"sets": set_map, "deletes": delete_set}
    return out


# --------------------------------------------------------------------------------------------
# Messages


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
    ts = _req(payload, "timestamp", list, frame)
    if len(ts) != 3 or not isinstance(ts[0], (int, float)) or not isinstance(ts[1], (int, float)):
        raise ProtocolError(f"{frame} frame: timestamp must be [ms, counter, clientId], got {ts!r:.80}")
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

    def to_payload(self) -> Dict[str, Any]:
        return {"changes": encode_changes(self.changes), "timestamp": self.timestamp, "forQueries": self.for_queries}

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "EntityData":
        changes = decode_changes(_req(payload, "changes", dict, cls.TYPE), frame_type=cls.TYPE)
        for_queries = _req(payload, "forQueries", list, cls.TYPE)
        if not all(isinstance(q, str) for q in for_queries):
            raise ProtocolError(f"{cls.TYPE} frame: forQueries must hold query id strings")
        return cls(changes, _timestamp(payload, cls.TYPE), for_queries)


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
            error = {"name": "TriplitError", "message": str(error)[:500] if error is not None else "unknown error"}
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
            return WriteError(redact(self.message), name=self.name, status=status, data=self.error)
        return server_error_from_json(self.error)


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
        return cls(_req(payload, "type", str, cls.TYPE), retry is True, _opt(payload, "message", str, cls.TYPE))

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
            raise ValueError(f"ConnectQuery: params must be a query with a collectionName, got {self.params!r:.120}")
        if self.state is not None and not isinstance(self.state, Mapping):
            raise ValueError(f"ConnectQuery: state must be a mapping or None, got {type(self.state).__name__}")

    def to_payload(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"id": self.id, "params": self.params}
        if self.state is not None:
            state = dict(self.state)
            ids = state.get("entityIds")
            if isinstance(ids, Mapping):
                state["entityIds"] = {c: sorted(v) if isinstance(v, (set, frozenset)) else v for c, v in ids.items()}
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
        return f"UpdateToken(token={_REDACTED!r})"

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


_BY_TYPE: Dict[str, Type[Message]] = {
    c.TYPE: c
    for c in (
        Ready,
        SchemaRequest,
        EntityData,
        ChangesAck,
        ErrorMessage,
        Close,
        Pong,
        Chunk,
        ConnectQuery,
        DisconnectQuery,
        ChangesMessage,
        UpdateToken,
        SchemaResponse,
        Ping,
    )
}


def decode_message(frame: Union[str, bytes, bytearray, memoryview]) -> Message:
    """Parse one text frame (``str`` or UTF-8 ``bytes``) into its message object.

    Raises :class:`ProtocolError` naming the frame type and the problem for invalid JSON, a
    missing or unknown ``type`` or a payload of the wrong shape (never a bare KeyError).

        >>> decode_message(b'{"type":"CHANGES_ACK","payload":{"timestamp":[1,0,"server"]}}')
        ChangesAck(timestamp=[1, 0, 'server'])
    """
    if isinstance(frame, memoryview):
        frame = bytes(frame)
    try:
        obj = _loads(frame)
    except (ValueError, TypeError) as e:
        raise ProtocolError(f"frame is not valid JSON ({e}): {_excerpt(frame)!r}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"frame is not a JSON object: {_excerpt(frame)!r}")
    mtype = obj.get("type")
    if not isinstance(mtype, str):
        raise ProtocolError(f"frame has no message type: {_excerpt(frame)!r}")
    cls = _BY_TYPE.get(mtype)
    if cls is None:
        raise ProtocolError(f"{redact(mtype, 60)} frame: unknown message type")
    payload = obj.get("payload")
    if payload is None:
        payload = {}
    elif not isinstance(payload, dict):
        raise ProtocolError(f"{mtype} frame: payload is not an object but {type(payload).__name__}")
    try:
        return cls.from_payload(payload)
    except ProtocolError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ProtocolError(f"{mtype} frame: malformed payload ({redact(e, 200)})") from None


def _encode_bytes(msg: Message) -> bytes:
    if not isinstance(msg, Message) or not msg.TYPE:
        raise TypeError(f"expected a protocol message, got {type(msg).__name__}")
    return _dumps_bytes({"type": msg.TYPE, "payload": msg.to_payload()})


def encode_message(msg: Message) -> str:
    """The compact JSON text frame of ``msg``. Raises TypeError for values JSON cannot hold.

        >>> encode_message(DisconnectQuery("q1"))
        '{"type":"DISCONNECT_QUERY","payload":{"id":"q1"}}'
    """
    return _encode_bytes(msg).decode("utf-8")


def encode_frames(msg: Message, chunk_size: Optional[int] = DEFAULT_CHUNK_SIZE) -> List[bytes]:
    """The UTF-8 frames that carry ``msg``: one frame, or CHUNK frames when it is over
    ``chunk_size`` bytes (None or 0 disables chunking)."""
    data = _encode_bytes(msg)
    if not chunk_size or len(data) <= chunk_size:
        return [data]
    return [_encode_bytes(c) for c in chunk_message(data, chunk_size)]


# --------------------------------------------------------------------------------------------
# Chunking


def _utf8_pieces(data: bytes, limit: int) -> List[bytes]:
    pieces = []
    start, n = 0, len(data)
    while start < n:
        end = min(start + limit, n)
        # Never cut inside a multi-byte character: back up over continuation bytes.
        while end < n and end > start and (data[end] & 0xC0) == 0x80:
            end -= 1
        if end == start:  # limit smaller than one character
            end = start + 1
            while end < n and (data[end] & 0xC0) == 0x80:
                end += 1
        pieces.append(data[start:end])
        start = end
    return pieces


def chunk_message(
    text: Union[str, bytes], limit: int = DEFAULT_CHUNK_SIZE, *, chunk_id: Optional[str] = None
) -> List[Chunk]:
    """Split a serialized message into CHUNK messages whose ``data`` is at most ``limit``
    UTF-8 bytes each (never cutting a character). A text that fits gives one chunk.

        >>> [c.data for c in chunk_message('{"type":"PING"}', 8, chunk_id="x")]
        ['{"type":', '"PING"}']
    """
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"chunk limit must be a positive number of bytes, got {limit!r}")
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    pieces = _utf8_pieces(data, limit) or [b""]
    cid = chunk_id or os.urandom(6).hex()
    total = len(pieces)
    return [Chunk(cid, i, total, p.decode("utf-8")) for i, p in enumerate(pieces)]


class ChunkAssembler:
    """Joins incoming CHUNK pieces (in any order) back into the original message text.

    Holds at most ``max_pending`` unfinished messages and ``max_bytes`` of pieces; beyond that
    the oldest unfinished message is dropped (a peer that never finishes cannot fill memory).

        >>> a = ChunkAssembler()
        >>> [a.add(c) for c in chunk_message('{"type":"PING"}', 8, chunk_id="x")]
        [None, '{"type":"PING"}']
    """

    def __init__(self, max_pending: int = 16, max_bytes: int = 512 * 1024 * 1024) -> None:
        self._pending: Dict[str, Tuple[int, Dict[int, str]]] = {}
        self._max_pending = max_pending
        self._max_bytes = max_bytes
        self._bytes = 0

    def add(self, chunk: Chunk) -> Optional[str]:
        """Store one piece; return the whole text once every piece of its message is there.
        Raises ProtocolError when a piece contradicts the earlier ones."""
        entry = self._pending.get(chunk.id)
        if entry is None:
            if chunk.total == 1:
                return chunk.data
            while len(self._pending) >= self._max_pending:
                self._drop_oldest()
            entry = (chunk.total, {})
            self._pending[chunk.id] = entry
        total, pieces = entry
        if chunk.total != total or not 0 <= chunk.index < total:
            self._drop(chunk.id)
            raise ProtocolError(
                f"CHUNK frame: piece {chunk.index}/{chunk.total} contradicts total {total} of chunk id {chunk.id!r}"
            )
        old = pieces.get(chunk.index)
        self._bytes += len(chunk.data) - (len(old) if old is not None else 0)
        pieces[chunk.index] = chunk.data
        if len(pieces) == total:
            self._drop(chunk.id)
            return "".join(pieces[i] for i in range(total))
        while self._bytes > self._max_bytes and len(self._pending) > 1:
            self._drop_oldest()
        return None

    @property
    def pending(self) -> int:
        """How many messages are partly received."""
        return len(self._pending)

    def clear(self) -> None:
        self._pending.clear()
        self._bytes = 0

    def _drop(self, chunk_id: str) -> None:
        entry = self._pending.pop(chunk_id, None)
        if entry is not None:
            self._bytes -= sum(len(p) for p in entry[1].values())

    def _drop_oldest(self) -> None:
        self._drop(next(iter(self._pending)))


# --------------------------------------------------------------------------------------------
# Query ids

#: The CollectionQuery keys the JS client hashes (``hashQuery``), in no particular order.
QUERY_ID_KEYS = ("after", "collectionName", "select", "include", "limit", "order", "vars", "where")


class _Undefined:
    def __str__(self) -> str:
        return "undefined"

    __repr__ = __str__


_UNDEFINED = _Undefined()


def query_id(query: Mapping[str, Any], *, builder: bool = True) -> str:
    """The query id the JS client would use for ``query`` (a CollectionQuery as sent in
    ``CONNECT_QUERY.params``): unsigned 32-bit FNV-1a of its canonical text, as a decimal string.

    With ``builder=True`` (default) the id equals what ``@triplit/client`` 1.0.50 sends: its query
    builder always carries all eight keys of :data:`QUERY_ID_KEYS`, unset ones as JS
    ``undefined``, so missing (or ``None``) keys hash as the word ``undefined``. The wire omits
    them (JSON drops ``undefined``) and adds a random ``traceId``, which is not hashed. This is
    verified against every id recorded in the traces. ``builder=False`` hashes only the keys
    present, as ``hashQuery`` does for a hand-written query object (PROTOCOL.md §5.2 example).

        >>> query_id({"collectionName": "todos"})
        '2294105723'
        >>> query_id({"collectionName": "todos", "where": [["done", "=", False]]}, builder=False)
        '3583458536'
    """
    if not isinstance(query, Mapping) or not isinstance(query.get("collectionName"), str):
        raise ValueError(f"query_id needs a query with a collectionName, got {query!r:.120}")
    if builder:
        canonical = {k: _UNDEFINED if query.get(k) is None else query[k] for k in QUERY_ID_KEYS}
    else:
        canonical = {k: query[k] for k in QUERY_ID_KEYS if k in query}
    return str(hash_object(canonical))
