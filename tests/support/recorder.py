"""Collects what a WebSocketTransport reports (messages, closes, status changes, callback
errors) so tests can wait on it with conditions instead of sleeping."""

from __future__ import annotations

import threading
from typing import Any, Callable, List

from triplit_sync.transport.websocket import CloseInfo, ConnectionStatus, StatusChange
from triplit_sync.wire.messages import Message


class Recorder:
    """Collects what the transport reports, with waits instead of sleeps."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.messages: List[Message] = []
        self.closes: List[CloseInfo] = []
        self.changes: List[StatusChange] = []
        self.errors: List[BaseException] = []
        self.tokens_given = 0

    def on_message(self, msg: Message) -> None:
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def on_close(self, info: CloseInfo) -> None:
        with self.cond:
            self.closes.append(info)
            self.cond.notify_all()

    def on_status(self, change: StatusChange) -> None:
        with self.cond:
            self.changes.append(change)
            self.cond.notify_all()

    def on_error(self, exc: BaseException) -> None:
        with self.cond:
            self.errors.append(exc)
            self.cond.notify_all()

    def token(self) -> str:
        with self.cond:
            self.tokens_given += 1
            return f"tok{self.tokens_given}"

    def wait(self, pred: Callable[[], Any], timeout: float = 5.0) -> None:
        with self.cond:
            assert self.cond.wait_for(pred, timeout), "condition not reached in time"

    def message(self, cls: type, timeout: float = 5.0) -> Any:
        self.wait(lambda: any(isinstance(m, cls) for m in self.messages), timeout)
        return next(m for m in self.messages if isinstance(m, cls))

    def statuses(self) -> List[ConnectionStatus]:
        with self.cond:
            return [c.status for c in self.changes]
