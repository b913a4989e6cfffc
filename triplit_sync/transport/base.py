"""The transport interface: what the client needs of a connection to the server.

:class:`~triplit_sync.transport.WebSocketTransport` is the implementation; a test (or an
application with its own networking) can pass another through
``TriplitClient(..., transport_factory=...)``. The factory is called as
``factory(server_url, token_provider=..., on_message=..., on_close=..., ping_interval=...,
pong_timeout=..., schema_hash=..., schema_provider=..., error_hook=...)`` and returns an object
with the members below. Its contract:

- ``token_provider()`` is called before every connection attempt (it may raise: the attempt
  failed, retry later) and returns the token for the socket URL, or ``None`` for no connection;
- ``on_message(message)`` gets every decoded :class:`~triplit_sync.wire.messages.Message` from
  the server, in order, on one thread; ``READY`` first on each connection;
- ``on_close(info)`` is called once per connection that ended, before the next one's ``READY``;
- ``send`` returns False (and drops the message) when no connection is ready.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

from ..wire.messages import Message
from ._status import ConnectionStatus, StatusChange

__all__ = ["Transport"]


class Transport(Protocol):
    """One connection to the server at a time, reconnecting while a connection is wanted."""

    @property
    def status(self) -> ConnectionStatus:
        """UNINITIALIZED before the first connect, then CONNECTING / OPEN / CLOSING / CLOSED."""

    @property
    def is_ready(self) -> bool:
        """The server said READY on the current connection."""

    @property
    def wants_connection(self) -> bool:
        """connect() was called and neither disconnect() nor close() since."""

    def connect(self) -> None:
        """Connect in the background (and reconnect after failures) until disconnect()."""

    def disconnect(self, timeout: float = 1.0) -> None:
        """Close the connection and stop reconnecting."""

    def reconnect(self, timeout: float = 1.0) -> None:
        """Close the current connection and open a new one."""

    def close(self, timeout: float = 1.0) -> None:
        """Disconnect for good and stop every thread."""

    def send(self, msg: Message) -> bool:
        """Send on the ready connection; False if there is none."""

    def probe(self, timeout: Optional[float] = None) -> bool:
        """Make the connection prove it is alive (a ping); drop it if it does not answer."""

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until READY (True), or ``timeout`` passed / no connection is wanted (False)."""

    def add_status_listener(self, callback: Callable[[StatusChange], None]) -> Callable[[], None]:
        """Call ``callback(change)`` on each status change; returns a remover."""
