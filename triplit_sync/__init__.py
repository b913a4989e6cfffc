"""triplit_sync: a Python client for Triplit sync servers.

Sessions, live queries, optimistic writes with a durable outbox, an HTTP client, and a real
local Triplit server for tests.
"""

from __future__ import annotations

import logging

from ._util.rows import Rows
from ._util.types import StorageKind
from ._util.version import __version__
from .client import (
    ChangesStream,
    ExpandingSubscription,
    Page,
    PagedSubscription,
    QueryState,
    QueryStatus,
    RowChanges,
    StatusSubscription,
    TriplitClient,
)
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
from .schema import DEMO_SCHEMA, Collection, Relation, S, Schema
from .session import SessionErrorType, SessionInfo, mint_token
from .sync import OutcomeStatus, RejectedWrite, Subscription, WriteOutcome
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
    "ChangesStream",
    "ClientClosedError",
    "Collection",
    "ConnectionStatus",
    "DEMO_SCHEMA",
    "EntityNotFoundError",
    "ExpandingSubscription",
    "FetchPolicy",
    "HttpClient",
    "InvalidQueryError",
    "NoActiveSessionError",
    "NotFoundError",
    "OutcomeStatus",
    "Page",
    "PagedSubscription",
    "PayloadTooLargeError",
    "PendingWrite",
    "PermissionDeniedError",
    "ProtocolError",
    "Query",
    "QueryError",
    "QueryState",
    "QueryStatus",
    "RejectedWrite",
    "Relation",
    "RowChanges",
    "Rows",
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
    "StatusSubscription",
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
    "WriteOutcome",
    "and_",
    "exists",
    "mint_token",
    "or_",
]
