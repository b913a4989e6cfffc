"""Every error triplit_sync raises, in one tree under :class:`TriplitError`, grouped by kind.

Catch by *kind* with the five ``Any…Error`` bases, or by *origin* with :class:`ServerError`
(every error the server produced, whatever its kind). Each class below sits under its kind;
``[server]`` marks a class that is also a :class:`ServerError`. Errors from bad input raise at
the call and are also ``ValueError``/``TypeError``/``LookupError`` where that is what a Python
user would catch. Errors from the server carry its error ``name`` (for example
``"WritePermissionError"``) and HTTP-style ``status``; local errors have ``status`` ``None``.

    TriplitError
    ├── AnyConnectionError              the client cannot talk to the server
    │   ├── TriplitConnectionError      the server could not be reached (also ConnectionError)
    │   ├── TriplitTimeoutError         a blocking call timed out (also TimeoutError)
    │   ├── ProtocolError               a frame or answer that breaks the wire protocol
    │   └── ClientClosedError           the client was closed
    ├── AnySessionError                 who you are and what you may do
    │   ├── AuthenticationError         [server] token missing, undecodable, bad signature, expired
    │   │   └── ServerTokenExpiredError [server] the server says the token has expired
    │   ├── PermissionDeniedError       [server] a permission rule rejected the read or write
    │   ├── NoActiveSessionError        the call needs a session and there is none
    │   ├── TokenDecodingError          a token that is not a readable JWT (also ValueError)
    │   ├── TokenExpiredError           a token whose ``exp`` has passed (local check or server)
    │   └── SessionRolesMismatchError   a new token whose roles differ from the session's
    ├── AnyQueryError                   a read that cannot run or failed
    │   ├── InvalidQueryError           a query the library or the server cannot run (also ValueError)
    │   │   └── ServerInvalidQueryError [server] the server refused the query
    │   └── QueryError                  [server] a live query failed on the server
    ├── AnyWriteError                   a write that cannot be made or was rejected
    │   ├── WriteError                  [server] a batch of synced writes was rejected
    │   ├── SchemaValidationError       a value does not fit the schema (also ValueError)
    │   │   └── ServerSchemaValidationError [server] the server could not store the value
    │   ├── EntityNotFoundError         the entity a call needs does not exist (also LookupError)
    │   │   └── ServerEntityNotFoundError [server] ...on the server (also NotFoundError)
    │   └── PayloadTooLargeError        [server] the request body is over the server's limit
    ├── AnyStorageError                 the local database cannot be used
    │   ├── StorageLockedError          every slot of this client name is in use, or it is open in this process
    │   ├── StorageCorruptError         the local database file cannot be used
    │   └── StorageUnsafeError          the client's folder or files could be tampered with (symlink, owner, mode)
    └── ServerError                     the server answered with an error (name, status, message)
        ├── NotFoundError               unknown route or resource
        └── every class marked [server] above

One name means one thing: a server error whose name is a local class's name (``EntityNotFoundError``,
``TokenExpiredError``, the ``Invalid…`` query errors, the serialization errors) raises a ``Server…``
class that is both that local class and a :class:`ServerError`, so ``except EntityNotFoundError``
and ``except ServerError`` both catch it. Every class keeps the bases it had before the kinds were
added, so ``except`` clauses written against older releases still catch what they caught.

    try:
        client.update("todos", todo_id, lambda t: t.update(done=True))
    except AnyWriteError as error:        # any write problem, local or from the server
        print(error.name, error.status, error.message)

Messages never contain tokens.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

__all__ = [
    "TriplitError",
    "AnyConnectionError",
    "AnySessionError",
    "AnyQueryError",
    "AnyWriteError",
    "AnyStorageError",
    "ServerError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "WriteError",
    "QueryError",
    "InvalidQueryError",
    "EntityNotFoundError",
    "SchemaValidationError",
    "TriplitConnectionError",
    "TriplitTimeoutError",
    "ProtocolError",
    "NoActiveSessionError",
    "TokenDecodingError",
    "TokenExpiredError",
    "SessionRolesMismatchError",
    "StorageLockedError",
    "StorageUnsafeError",
    "StorageCorruptError",
    "ClientClosedError",
    "ServerInvalidQueryError",
    "ServerSchemaValidationError",
    "ServerEntityNotFoundError",
    "ServerTokenExpiredError",
    "server_error_from_json",
]


class TriplitError(Exception):
    """Base class of every error raised by triplit_sync.

    ``name`` is the server's error name where the server produced the error, otherwise the
    class name; ``status`` is the server's HTTP-style status, or ``None`` for local errors.
    """

    def __init__(
        self,
        message: str,
        *,
        name: Optional[str] = None,
        status: Optional[int] = None,
        data: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.name = name or type(self).__name__
        self.status = status
        #: the raw error object the server sent, if the server produced this error
        self.data: Dict[str, Any] = dict(data or {})

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, status={self.status!r}, message={self.message!r})"


# ------------------------------------------------------------------------------ kinds
# Bases to catch by kind; they hold no state of their own. Every concrete class below also
# keeps the bases it had before the kinds existed.


class AnyConnectionError(TriplitError):
    """Kind base: the client cannot talk to the server (unreachable, timed out, garbled, closed)."""


class AnySessionError(TriplitError):
    """Kind base: the session or its token (no session, bad or expired token, refused auth, permission)."""


class AnyQueryError(TriplitError):
    """Kind base: a read that cannot run (bad query) or that failed on the server."""


class AnyWriteError(TriplitError):
    """Kind base: a write that cannot be made (bad value, missing entity) or that the server rejected."""


class AnyStorageError(TriplitError):
    """Kind base: the local database cannot be used (locked, corrupt, unsafe)."""


# ------------------------------------------------------------------------------ classes


class ServerError(TriplitError):
    """The server rejected a request or message; ``data`` is the error object it sent."""


class AuthenticationError(ServerError, AnySessionError):
    """The server did not accept the token (missing, undecodable, bad signature, expired)."""


class PermissionDeniedError(ServerError, AnySessionError):
    """A permission rule of the server's schema rejected the operation."""


class NotFoundError(ServerError):
    """The server has no such route or resource."""


class PayloadTooLargeError(ServerError, AnyWriteError):
    """The request body is larger than the server accepts."""


class WriteError(ServerError, AnyWriteError):
    """The server rejected a batch of synced writes.

    ``changes`` holds the rejected writes as ``{collection: {"sets": {id: doc}, "deletes": set(ids)}}``.
    When one call reports several rejected batches, ``failures`` lists all of them.
    """

    def __init__(
        self,
        message: str,
        *,
        name: Optional[str] = None,
        status: Optional[int] = None,
        data: Optional[Mapping[str, Any]] = None,
        changes: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(message, name=name, status=status, data=data)
        self.changes: Dict[str, Any] = dict(changes or {})
        self.failures: List["WriteError"] = [self]


class QueryError(ServerError, AnyQueryError):
    """A live query failed on the server; ``name``/``message`` are the inner (real) cause."""

    def __init__(
        self,
        message: str,
        *,
        name: Optional[str] = None,
        status: Optional[int] = None,
        data: Optional[Mapping[str, Any]] = None,
        query_id: Optional[str] = None,
    ) -> None:
        super().__init__(message, name=name, status=status, data=data)
        self.query_id = query_id


class InvalidQueryError(AnyQueryError, ValueError):
    """A query that cannot be run: unknown collection, attribute or operator, bad filter."""


class EntityNotFoundError(AnyWriteError, LookupError):
    """The entity a call needs (for example to update it with a function) is not in the local database."""


class SchemaValidationError(AnyWriteError, ValueError):
    """A value that does not fit the schema, named with its collection and (dotted) attribute."""

    collection: Optional[str] = None
    attribute: Optional[str] = None


class TriplitConnectionError(AnyConnectionError, ConnectionError):
    """The server could not be reached; the message names the URL (never a token)."""


class TriplitTimeoutError(AnyConnectionError, TimeoutError):
    """A blocking call did not finish within its timeout."""


class ProtocolError(AnyConnectionError):
    """A frame that breaks the wire protocol; the message names the frame type and the problem."""


class NoActiveSessionError(AnySessionError):
    """The call needs a session (a token) and the client has none."""


class TokenDecodingError(AnySessionError, ValueError):
    """The token is not a JWT whose claims can be read."""


class TokenExpiredError(AnySessionError):
    """The token's ``exp`` has already passed."""


class SessionRolesMismatchError(AnySessionError):
    """The new token's roles differ from the current session's; start a new session instead."""


class StorageLockedError(AnyStorageError):
    """This client name cannot get a local database: it is open in this process already, or
    every one of its slots is owned by a live process."""


class StorageUnsafeError(AnyStorageError):
    """The client's folder or one of its files is not safe to use: a symlink, owned by another
    user, or writable by others. ``path`` names it; the message says what to fix."""

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        super().__init__(message)
        self.path = path


class StorageCorruptError(AnyStorageError):
    """The local database file is unreadable, not a triplit_sync cache, or holds malformed rows.

    ``path`` names it; moving it aside and opening again starts fresh (TriplitClient does that).
    """

    def __init__(self, message: str, *, path: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.path = path


class ClientClosedError(AnyConnectionError):
    """The client has been closed and cannot be used any more."""


# ------------------------------------------------------------------------------ server twins
# A server error named like a local class is raised as a twin that is both: the name on the
# error and the class that catches it then mean the same thing.


class ServerInvalidQueryError(ServerError, InvalidQueryError):
    """The server refused a query (bad filter, unknown collection or attribute, bad order...)."""


class ServerSchemaValidationError(ServerError, SchemaValidationError):
    """The server could not serialize or store a value (``DBSerializationError`` and the like)."""


class ServerEntityNotFoundError(NotFoundError, EntityNotFoundError):
    """The server has no entity the request needs; also a :class:`NotFoundError` as before."""


class ServerTokenExpiredError(AuthenticationError, TokenExpiredError):
    """The server refused the token because its ``exp`` has passed."""


_BY_NAME = {
    "WritePermissionError": PermissionDeniedError,
    "ReadPermissionError": PermissionDeniedError,
    "ServiceKeyRequiredError": PermissionDeniedError,
    "NoTokenProvidedError": AuthenticationError,
    "InvalidAuthenticationSchemeError": AuthenticationError,
    "InvalidTokenSignatureError": AuthenticationError,
    "InvalidTokenPayloadError": AuthenticationError,
    "TokenVerificationError": AuthenticationError,
    "TokenExpiredError": ServerTokenExpiredError,
    "RouteNotFoundError": NotFoundError,
    "PayloadTooLargeError": PayloadTooLargeError,
    "InvalidFilterError": ServerInvalidQueryError,
    "InvalidCollectionNameError": ServerInvalidQueryError,
    "CollectionNotFoundError": ServerInvalidQueryError,
    "InvalidQueryWhereError": ServerInvalidQueryError,
    "InvalidOrderClauseError": ServerInvalidQueryError,
    "IncludedNonRelationError": ServerInvalidQueryError,
    "RelationDoesNotExistError": ServerInvalidQueryError,
    "InvalidQueryInclusionError": ServerInvalidQueryError,
    "InvalidQueryLimitError": ServerInvalidQueryError,
    "InvalidQueryAfterError": ServerInvalidQueryError,
    "InvalidWhereClauseError": ServerInvalidQueryError,
    "InvalidSelectClauseError": ServerInvalidQueryError,
    "QueryClauseFormattingError": ServerInvalidQueryError,
    "AfterClauseWithNoOrderError": ServerInvalidQueryError,
    "InvalidQueryCardinalityError": ServerInvalidQueryError,
    "SessionVariableNotFoundError": ServerInvalidQueryError,
    "UnauthorizedError": AuthenticationError,
    "InvalidTokenProjectIdError": AuthenticationError,
    "TokenMissingProjectIdError": AuthenticationError,
    "UnrecognizedTokenTypeError": AuthenticationError,
    "EntityNotFoundError": ServerEntityNotFoundError,
    "DBSerializationError": ServerSchemaValidationError,
    "DBDeserializationError": ServerSchemaValidationError,
    "JSONSerializationError": ServerSchemaValidationError,
    "JSONDeserializationError": ServerSchemaValidationError,
    "InvalidInsertDocumentError": ServerSchemaValidationError,
}

#: The ``contextMessage`` (PROTOCOL.md §4) a 1.1.8 server gives a token whose ``exp`` has passed.
_EXPIRED_CONTEXT = '"exp" claim timestamp check failed'


def server_error_from_json(data: Any, status: Optional[int] = None) -> TriplitError:
    """Turn a serialized server error (``{name, message, status, ...}``) into the matching error class."""
    if not isinstance(data, Mapping):
        return ServerError(str(data)[:500] or "server error", status=status)
    name = str(data.get("name") or "TriplitError")
    message = str(data.get("message") or data.get("baseMessage") or name)
    if status is None and isinstance(data.get("status"), int):
        status = data["status"]
    cls: type = _BY_NAME.get(name) or ServerError
    if cls is AuthenticationError and _EXPIRED_CONTEXT in str(data.get("contextMessage") or ""):
        # A 1.1.8 server reports an expired token as a bad signature; its context names the claim.
        cls = ServerTokenExpiredError
    if cls is ServerError and status == 413:
        cls = PayloadTooLargeError
    if cls is ServerError and status == 404:
        cls = NotFoundError
    return cls(message, name=name, status=status, data=data)  # type: ignore[no-any-return]

