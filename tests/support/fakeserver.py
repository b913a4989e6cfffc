"""A scriptable websocket server for tests of what the real Triplit server cannot be made to do
(chunked server frames, garbage frames, closes without a reason, a peer that stops reading).

Built on the ``websockets`` package's threaded server. The test thread drives every
connection itself:

    with FakeServer() as server:
        transport = WebSocketTransport(server.url, ...)
        transport.connect()
        conn = server.accept()                      # the next connection, as a FakeConnection
        conn.send_json({"type": "READY", "payload": {"clientId": "c1"}})
        assert conn.recv_json()["type"] == "CONNECT_QUERY"
        conn.close(1000)                            # or conn.drop() for a dead network
"""

from __future__ import annotations

import json
import queue
import socket
import threading
from typing import Any, Dict, List, Optional, Union
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.server import Server, ServerConnection, serve


class FakeConnection:
    """One accepted client connection, driven from the test thread."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.path = ws.request.path if ws.request is not None else ""
        self.query: Dict[str, str] = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        self.done = threading.Event()

    @property
    def token(self) -> Optional[str]:
        return self.query.get("token")

    def send_json(self, obj: Any) -> None:
        self.ws.send(json.dumps(obj, separators=(",", ":")))

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def send_bytes(self, data: bytes) -> None:
        self.ws.send(data)

    def recv_text(self, timeout: float = 5.0) -> str:
        message = self.ws.recv(timeout)
        assert isinstance(message, str), f"expected a text frame, got {type(message).__name__}"
        return message

    def recv_json(self, timeout: float = 5.0) -> Dict[str, Any]:
        return json.loads(self.recv_text(timeout))  # type: ignore[no-any-return]

    def recv_until_closed(self, timeout: float = 5.0) -> List[Union[str, bytes]]:
        """Every message until the client closes; the close code/reason are then in ``closed_by``."""
        out: List[Union[str, bytes]] = []
        try:
            while True:
                out.append(self.ws.recv(timeout))
        except ConnectionClosed:
            return out

    @property
    def close_code(self) -> Optional[int]:
        """The code of the close frame the client sent (None if it sent none)."""
        rcvd = self.ws.protocol.close_rcvd
        return rcvd.code if rcvd is not None else None

    @property
    def close_reason(self) -> Optional[str]:
        rcvd = self.ws.protocol.close_rcvd
        return rcvd.reason if rcvd is not None else None

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """Wait until the client has closed the connection, discarding messages meanwhile."""
        try:
            while True:
                self.ws.recv(timeout)
        except ConnectionClosed:
            return True
        except TimeoutError:
            return False

    def close(self, code: int = 1000, reason: str = "") -> None:
        """A proper close handshake with this code and reason."""
        self.ws.close(code, reason)
        self.done.set()

    def drop(self) -> None:
        """Cut the TCP connection without a close frame (a crashed server, a dead network)."""
        try:
            self.ws.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ws.socket.close()
        self.done.set()


class FakeServer:
    """Listens on 127.0.0.1 and hands each connection to the test via :meth:`accept`.

    ``max_queue`` is how many unread frames the server buffers before it stops reading from the
    socket (websockets' flow control); with 1 and no recv() calls the peer stops reading.
    ``rcvbuf`` shrinks the kernel receive buffer so a stopped reader backs up quickly.
    """

    def __init__(self, port: int = 0, *, max_queue: int = 16, rcvbuf: Optional[int] = None) -> None:
        self._requested_port = port
        self._max_queue = max_queue
        self._rcvbuf = rcvbuf
        self._accepted: "queue.Queue[FakeConnection]" = queue.Queue()
        self.connections: List[FakeConnection] = []
        self._server: Optional[Server] = None
        self._thread: Optional[threading.Thread] = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeServer":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self._rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
        sock.bind(("127.0.0.1", self._requested_port or self.port))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self._server = serve(
            self._handler,
            sock=sock,
            compression=None,
            ping_interval=None,
            close_timeout=1,
            max_size=None,
            max_queue=self._max_queue,
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for conn in self.connections:
            conn.done.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def accept(self, timeout: float = 5.0) -> FakeConnection:
        """The next client connection; fails the test if none arrives within ``timeout``."""
        try:
            return self._accepted.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no client connected within {timeout} s") from None

    def assert_no_connection(self, timeout: float) -> None:
        """Fail if a client connects within ``timeout`` seconds."""
        try:
            conn = self._accepted.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected connection {conn.path}")

    def _handler(self, ws: ServerConnection) -> None:
        conn = FakeConnection(ws)
        self.connections.append(conn)
        self._accepted.put(conn)
        # Keep the connection open until the test is done with it or the client goes away.
        while not conn.done.wait(0.05):
            if ws.protocol.state is State.CLOSED:
                return
