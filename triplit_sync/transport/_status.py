"""What the transport reports: the connection status, how a connection ended, status changes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from ..wire.messages import SESSION_ERROR_TYPES

__all__ = ["ConnectionStatus", "CloseInfo", "StatusChange"]


class ConnectionStatus(str, Enum):
    """State of the socket (``OPEN`` means the socket is open, not that READY has arrived)."""

    UNINITIALIZED = "UNINITIALIZED"
    CONNECTING = "CONNECTING"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


@dataclass(frozen=True)
class CloseInfo:
    """How one connection ended.

    ``type`` is the CLOSE type (``"UNAUTHORIZED"``, ...; ``"UNKNOWN"`` for an unparseable reason;
    None when the close had no reason: network drop, server crash); ``message`` is the text of the
    server's CLOSE message, if one came. ``code`` is the close-frame code (1006 when the socket
    ended without one). ``manual`` marks closes this side asked for (disconnect, reconnect, close).
    ``was_open``/``was_ready``: the socket had opened / READY had arrived. ``error`` describes a
    network failure (never holds a token).
    """

    type: Optional[str]
    retry: bool
    message: Optional[str]
    code: Optional[int]
    manual: bool
    will_reconnect: bool
    was_open: bool = True
    was_ready: bool = False
    error: Optional[str] = None

    @property
    def is_session_error(self) -> bool:
        """True for UNAUTHORIZED, TOKEN_EXPIRED, ROLES_MISMATCH and SCHEMA_MISMATCH."""
        return self.type in SESSION_ERROR_TYPES


@dataclass(frozen=True)
class StatusChange:
    """What status listeners receive. ``manual`` is True when a disconnect()/reconnect()/close()
    of this transport caused the change; ``close`` is set on changes caused by a close."""

    status: ConnectionStatus
    previous: ConnectionStatus
    manual: bool = False
    close: Optional[CloseInfo] = None
