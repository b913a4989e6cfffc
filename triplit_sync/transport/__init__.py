"""The transport: one websocket connection to the server at a time, with reconnects and backoff,
keepalive pings, close reasons, and the connection status users see. :class:`Transport` is the
interface the client uses; :class:`WebSocketTransport` implements it.

May import :mod:`triplit_sync.wire`, :mod:`triplit_sync._util` and :mod:`triplit_sync.errors`;
knows nothing of queries, stores or sessions.
"""

from ._keepalive import check_pong_timeout
from ._status import CloseInfo, ConnectionStatus, StatusChange
from .base import Transport
from .websocket import WebSocketTransport

__all__ = ["CloseInfo", "ConnectionStatus", "StatusChange", "Transport", "WebSocketTransport", "check_pong_timeout"]
