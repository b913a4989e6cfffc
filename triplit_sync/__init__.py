"""triplit_sync: a Python client for Triplit sync servers.

Sessions, live queries, optimistic writes with a durable outbox, an HTTP client, and a real
local Triplit server for tests.
"""

from __future__ import annotations

import logging

from .errors import (
    AuthenticationError,
    ClientClosedError,
    InvalidQueryError,
    NoActiveSessionError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProtocolError,
    QueryError,
    SchemaValidationError,
    ServerError,
    SessionRolesMismatchError,
    StorageLockedError,
    TokenDecodingError,
    TokenExpiredError,
    TriplitConnectionError,
    TriplitError,
    TriplitTimeoutError,
    WriteError,
)
from .schema import Collection, Relation, S, Schema

__version__ = "0.1.0"

# A library never configures logging for its users; it only makes sure that records have
# somewhere harmless to go when the application has not configured any.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "Collection",
    "Relation",
    "S",
    "Schema",
    "AuthenticationError",
    "ClientClosedError",
    "InvalidQueryError",
    "NoActiveSessionError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ProtocolError",
    "QueryError",
    "SchemaValidationError",
    "ServerError",
    "SessionRolesMismatchError",
    "StorageLockedError",
    "TokenDecodingError",
    "TokenExpiredError",
    "TriplitConnectionError",
    "TriplitError",
    "TriplitTimeoutError",
    "WriteError",
]
