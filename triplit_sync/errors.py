"""Every error triplit_sync raises, in one tree under :class:`TriplitError`.

Errors from bad input raise at the call and are also ``ValueError`` or ``TypeError`` where
that is what a Python user would catch. Errors that come from the server carry its error
``name`` (for example ``"WritePermissionError"``) and HTTP-style ``status``.

    TriplitError
    ├── ServerError                 the server answered with an error (name, status, message)
    │   ├── AuthenticationError     token missing, undecodable, bad signature, expired
    │   ├── PermissionDeniedError   a permission rule rejected the read or write
    │   ├── NotFoundError           unknown route or resource
    │   ├── PayloadTooLargeError    the request body is over the server's limit
    │   ├── WriteError              a batch of synced writes was rejected
    │   └── QueryError              a live query failed on the server
    ├── InvalidQueryError           a query the library or the server cannot run (also ValueError)
    ├── EntityNotFoundError         the entity a call needs is not in the local database (also LookupError)
    ├── SchemaValidationError       a value does not fit the schema (also ValueError)
    ├── TriplitConnectionError      the server could not be reached
    ├── TriplitTimeoutError         a blocking call timed out (also TimeoutError)
    ├── ProtocolError               a frame that breaks the wire protocol
    ├── NoActiveSessionError        the call needs a session and there is none
    ├── TokenDecodingError          a token that is not a readable JWT (also ValueError)
    ├── TokenExpiredError           a token whose ``exp`` has passed
    ├── SessionRolesMismatchError   a new token whose roles differ from the session's
    ├── StorageLockedError          every slot of this client name is in use, or it is open in this process
    ├── StorageCorruptError         the local database file cannot be used
    ├── StorageUnsafeError          the client's folder or files could be tampered with (symlink, owner, mode)
    └── ClientClosedError           the client was closed

Messages never contain tokens.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

__all__ = [
    "TriplitError",
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


class ServerError(TriplitError):
    """The server rejected a request or message; ``data`` is the error object it sent."""


class AuthenticationError(ServerError):
    """The server did not accept the token (missing, undecodable, bad signature, expired)."""


class PermissionDeniedError(ServerError):
    """A permission rule of the server's schema rejected the operation."""


class NotFoundError(ServerError):
    """The server has no such route or resource."""


class PayloadTooLargeError(ServerError):
    """The request body is larger than the server accepts."""


class WriteError(ServerError):
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


class QueryError(ServerError):
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


class InvalidQueryError(TriplitError, ValueError):
    """A query that cannot be run: unknown collection, attribute or operator, bad filter."""


class EntityNotFoundError(TriplitError, LookupError):
    """The entity a call needs (for example to update it with a function) is not in the local database."""


class SchemaValidationError(TriplitError, ValueError):
    """A value that does not fit the schema, named with its collection and (dotted) attribute."""

    collection: Optional[str] = None
    attribute: Optional[str] = None


class TriplitConnectionError(TriplitError, ConnectionError):
    """The server could not be reached; the message names the URL (never a token)."""


class TriplitTimeoutError(TriplitError, TimeoutError):
    """A blocking call did not finish within its timeout."""


class ProtocolError(TriplitError):
    """A frame that breaks the wire protocol; the message names the frame type and the problem."""


class NoActiveSessionError(TriplitError):
    """The call needs a session (a token) and the client has none."""


class TokenDecodingError(TriplitError, ValueError):
    """The token is not a JWT whose claims can be read."""


class TokenExpiredError(TriplitError):
    """The token's ``exp`` has already passed."""


class SessionRolesMismatchError(TriplitError):
    """The new token's roles differ from the current session's; start a new session instead."""


class StorageLockedError(TriplitError):
    """This client name cannot get a local database: it is open in this process already, or
    every one of its slots is owned by a live process."""


class StorageUnsafeError(TriplitError):
    """The client's folder or one of its files is not safe to use: a symlink, owned by another
    user, or writable by others. ``path`` names it; the message says what to fix."""

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        super().__init__(message)
        self.path = path


class StorageCorruptError(TriplitError):
    """The local database file is unreadable, not a triplit_sync cache, or holds malformed rows.

    ``path`` names it; moving it aside and opening again starts fresh (TriplitClient does that).
    """

    def __init__(self, message: str, *, path: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.path = path


class ClientClosedError(TriplitError):
    """The client has been closed and cannot be used any more."""


_BY_NAME = {
    "WritePermissionError": PermissionDeniedError,
    "ReadPermissionError": PermissionDeniedError,
    "ServiceKeyRequiredError": PermissionDeniedError,
    "NoTokenProvidedError": AuthenticationError,
    "InvalidAuthenticationSchemeError": AuthenticationError,
    "InvalidTokenSignatureError": AuthenticationError,
    "InvalidTokenPayloadError": AuthenticationError,
    "TokenVerificationError": AuthenticationError,
    "TokenExpiredError": AuthenticationError,
    "RouteNotFoundError": NotFoundError,
    "PayloadTooLargeError": PayloadTooLargeError,
    "InvalidFilterError": InvalidQueryError,
    "InvalidCollectionNameError": InvalidQueryError,
    "CollectionNotFoundError": InvalidQueryError,
    "InvalidQueryWhereError": InvalidQueryError,
    "InvalidOrderClauseError": InvalidQueryError,
    "IncludedNonRelationError": InvalidQueryError,
    "RelationDoesNotExistError": InvalidQueryError,
    "InvalidQueryInclusionError": InvalidQueryError,
    "InvalidQueryLimitError": InvalidQueryError,
    "InvalidQueryAfterError": InvalidQueryError,
    "InvalidWhereClauseError": InvalidQueryError,
    "InvalidSelectClauseError": InvalidQueryError,
    "QueryClauseFormattingError": InvalidQueryError,
    "AfterClauseWithNoOrderError": InvalidQueryError,
    "InvalidQueryCardinalityError": InvalidQueryError,
    "SessionVariableNotFoundError": InvalidQueryError,
    "UnauthorizedError": AuthenticationError,
    "InvalidTokenProjectIdError": AuthenticationError,
    "TokenMissingProjectIdError": AuthenticationError,
    "UnrecognizedTokenTypeError": AuthenticationError,
    "EntityNotFoundError": NotFoundError,
    "DBSerializationError": SchemaValidationError,
    "DBDeserializationError": SchemaValidationError,
    "JSONSerializationError": SchemaValidationError,
    "JSONDeserializationError": SchemaValidationError,
    "InvalidInsertDocumentError": SchemaValidationError,
}


def server_error_from_json(data: Any, status: Optional[int] = None) -> TriplitError:
    """Turn a serialized server error (``{name, message, status, ...}``) into the matching error class."""
    if not isinstance(data, Mapping):
        return ServerError(str(data)[:500] or "server error", status=status)
    name = str(data.get("name") or "TriplitError")
    message = str(data.get("message") or data.get("baseMessage") or name)
    if status is None and isinstance(data.get("status"), int):
        status = data["status"]
    cls: type = _BY_NAME.get(name) or ServerError
    if cls is ServerError and status == 413:
        cls = PayloadTooLargeError
    if cls is ServerError and status == 404:
        cls = NotFoundError
    return cls(message, name=name, status=status, data=data)  # type: ignore[no-any-return]

