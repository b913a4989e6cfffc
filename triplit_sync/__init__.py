"""triplit_sync: a Python client for Triplit sync servers.

Sessions, live queries, optimistic writes with a durable outbox, an HTTP client, and a real
local Triplit server for tests.
"""

from __future__ import annotations

import logging

from ._util.types import StorageKind
from ._util.version import __version__
from .client import TriplitClient
from .client.data import FetchPolicy, PendingWrite, RowsStream, Transaction
from .errors import (
    AnyConnectionError,
    AnyQueryError,
    AnySessionError,
    AnyStorageError,
    AnyWriteError,
    AuthenticationError,
    ClientClosedError,
    EntityNotFoundError,
    InvalidQueryError,
    NoActiveSessionError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProtocolError,
    QueryError,
    SchemaValidationError,
    ServerEntityNotFoundError,
    ServerError,
    ServerInvalidQueryError,
    ServerSchemaValidationError,
    ServerTokenExpiredError,
    SessionRolesMismatchError,
    StorageCorruptError,
    StorageLockedError,
    StorageUnsafeError,
    TokenDecodingError,
    TokenExpiredError,
    TriplitConnectionError,
    TriplitError,
    TriplitTimeoutError,
    WriteError,
)
from .http import HttpClient
from .query import Query, and_, exists, or_
from .schema import Collection, Relation, S, Schema
from .session import SessionErrorType, SessionInfo
from .sync import Subscription
from .transport import ConnectionStatus


# A library never configures logging for its users; it only makes sure that records have
# somewhere harmless to go when the application has not configured any.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "AnyConnectionError",
    "AnyQueryError",
    "AnySessionError",
    "AnyStorageError",
    "AnyWriteError",
    "AuthenticationError",
    "ClientClosedError",
    "Collection",
    "ConnectionStatus",
    "EntityNotFoundError",
    "FetchPolicy",
    "HttpClient",
    "InvalidQueryError",
    "NoActiveSessionError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PendingWrite",
    "PermissionDeniedError",
    "ProtocolError",
    "Query",
    "QueryError",
    "Relation",
    "RowsStream",
    "S",
    "Schema",
    "SchemaValidationError",
    "ServerEntityNotFoundError",
    "ServerError",
    "ServerInvalidQueryError",
    "ServerSchemaValidationError",
    "ServerTokenExpiredError",
    "SessionErrorType",
    "SessionInfo",
    "SessionRolesMismatchError",
    "StorageCorruptError",
    "StorageKind",
    "StorageLockedError",
    "StorageUnsafeError",
    "Subscription",
    "TokenDecodingError",
    "TokenExpiredError",
    "Transaction",
    "TriplitClient",
    "TriplitConnectionError",
    "TriplitError",
    "TriplitTimeoutError",
    "WriteError",
    "and_",
    "exists",
    "or_",
]
