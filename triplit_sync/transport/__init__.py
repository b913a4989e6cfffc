"""The transport: one websocket connection to the server at a time, with reconnects and backoff,
keepalive pings, close reasons, and the connection status users see.

May import :mod:`triplit_sync.wire`, :mod:`triplit_sync._util` and :mod:`triplit_sync.errors`;
knows nothing of queries, stores or sessions.
"""

from .websocket import CloseInfo, ConnectionStatus, StatusChange, WebSocketTransport

__all__ = ["CloseInfo", "ConnectionStatus", "StatusChange", "WebSocketTransport"]
