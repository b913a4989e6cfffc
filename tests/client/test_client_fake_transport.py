"""The transport is injectable: a TriplitClient driven by an in-process fake that implements
triplit_sync.transport.Transport, with no server and no socket."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional

from triplit_sync import ConnectionStatus, TriplitClient
from triplit_sync.testing import mint_token
from triplit_sync.transport import CloseInfo, StatusChange, Transport
from triplit_sync.wire.messages import (
    ChangesAck,
    ChangesMessage,
    ConnectQuery,
    EntityData,
    Message,
    Ping,
    Pong,
    Ready,
)


class FakeTransport:
    """Answers like a server would: READY on connect, PONG to a PING, CHANGES_ACK to CHANGES."""

    def __init__(self, server_url: str, *, token_provider: Callable[[], Optional[str]],
                 on_message: Callable[[Message], None], on_close: Optional[Callable[[CloseInfo], None]] = None,
                 **options: Any) -> None:
        self.server_url, self.options = server_url, options
        self._token_provider, self._on_message = token_provider, on_message
        self.tokens: List[Optional[str]] = []
        self.sent: List[Message] = []
        self.sent_changed = threading.Condition()
        self._status = ConnectionStatus.UNINITIALIZED
        self._wanted = False

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    @property
    def is_ready(self) -> bool:
        return self._status is ConnectionStatus.OPEN

    @property
    def wants_connection(self) -> bool:
        return self._wanted

    def connect(self) -> None:
        self._wanted = True
        self.tokens.append(self._token_provider())
        self._status = ConnectionStatus.OPEN
        self._on_message(Ready("fake-client"))

    def disconnect(self, timeout: float = 1.0) -> None:
        self._wanted = False
        self._status = ConnectionStatus.CLOSED

    def reconnect(self, timeout: float = 1.0) -> None:
        self.connect()

    def close(self, timeout: float = 1.0) -> None:
        self.disconnect()

    def send(self, msg: Message) -> bool:
        if not self.is_ready:
            return False
        with self.sent_changed:
            self.sent.append(msg)
            self.sent_changed.notify_all()
        if isinstance(msg, Ping):
            self._on_message(Pong(msg.client_timestamp, 1))
        elif isinstance(msg, ChangesMessage):
            self._on_message(ChangesAck([2, 0, "server"]))
        return True

    def probe(self, timeout: Optional[float] = None) -> bool:
        return self.is_ready

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        return self.is_ready

    def add_status_listener(self, callback: Callable[[StatusChange], None]) -> Callable[[], None]:
        return lambda: None

    def wait_sent(self, kind: type, timeout: float = 10.0) -> Any:
        with self.sent_changed:
            assert self.sent_changed.wait_for(lambda: any(isinstance(m, kind) for m in self.sent), timeout), \
                f"no {kind.__name__} was sent; sent: {self.sent}"
            return next(m for m in self.sent if isinstance(m, kind))


def test_a_client_runs_on_a_fake_transport() -> None:
    made: List[FakeTransport] = []

    def factory(server_url: str, **options: Any) -> Transport:
        made.append(FakeTransport(server_url, **options))
        return made[-1]

    token = mint_token("secret", sub="alice")
    with TriplitClient("http://fake.invalid", token, storage="memory", transport_factory=factory) as client:
        fake = made[0]
        assert fake.server_url == "http://fake.invalid" and fake.tokens == [token]
        assert client.wait_connected(timeout=1) and client.connection_status is ConnectionStatus.OPEN

        seen: List[List[Dict[str, Any]]] = []
        got = threading.Event()

        def on_results(rows: List[Dict[str, Any]]) -> None:
            seen.append(rows)
            if rows:
                got.set()

        client.subscribe(client.query("todos"), on_results)
        query = fake.wait_sent(ConnectQuery)
        assert query.params["collectionName"] == "todos"
        fake._on_message(EntityData({"todos": {"sets": {"t1": {"id": "t1", "text": "milk"}}, "deletes": set()}},
                                    [1, 0, "server"], [query.id]))
        assert got.wait(10), seen
        assert seen[-1] == [{"id": "t1", "text": "milk"}]

        client.insert("todos", {"id": "t2", "text": "bread"})
        client.wait_for_sync(timeout=10)
        changes = fake.wait_sent(ChangesMessage)
        assert set(changes.changes["todos"]["sets"]) == {"t2"}


def test_a_transport_factory_must_be_callable() -> None:
    import pytest

    with pytest.raises(TypeError, match="transport_factory must be callable"):
        TriplitClient("http://fake.invalid", storage="memory", transport_factory="websocket")  # type: ignore[arg-type]
