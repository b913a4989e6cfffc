"""A loopback TCP relay between a client and the real server, for faults the server can't make.

The client connects to ``relay.url`` (or ``relay.port``) instead of the server. The relay can
stop forwarding while keeping TCP open (a silent stall), cut every connection with a reset,
cut in the middle of the next server->client chunk, and deliver the client's bytes in batches
(``batch_client_to_server(0.1)``): what the client sends close together then reaches the
server in one read, which is how the server races of PROTOCOL §13.2 are made deterministic.

    with Relay(server.port) as relay:
        client = TriplitClient(relay.url, token=...)
        relay.stall(); ...; relay.resume()
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from typing import List, Optional

__all__ = ["Relay"]


class _Pair:
    def __init__(self, down: socket.socket, up: socket.socket) -> None:
        self.down = down  # the client's side
        self.up = up  # the server's side
        self.closed = False

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for s in (self.down, self.up):
            try:
                if reset:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass


class Relay:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<target_port> (see the module docstring)."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._cond = threading.Condition()
        self._pairs: List[_Pair] = []
        self.accepted = 0
        self._stalled = False
        self._batch: Optional[float] = None
        self._cut_mid_frame = False
        self._refuse = False
        self._closed = False
        self.cuts = 0  # connections reset by cut() / cut_mid_frame(), for tests that time recovery
        self.last_cut_at = 0.0  # time.monotonic() of the latest such reset
        threading.Thread(target=self._accept_loop, name="relay-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- controls ---------------------------------------------------------------------------

    def stall(self) -> None:
        """Stop forwarding in both directions; TCP stays open (nothing is closed or reset)."""
        with self._cond:
            self._stalled = True

    def resume(self) -> None:
        with self._cond:
            self._stalled = False
            self._cond.notify_all()

    def cut(self) -> None:
        """Reset every open connection (new connections are still accepted)."""
        with self._cond:
            pairs, self._pairs = self._pairs, []
            self._count_cut()
        for p in pairs:
            p.close(reset=True)

    def _count_cut(self) -> None:
        self.cuts += 1
        self.last_cut_at = time.monotonic()
        self._cond.notify_all()

    def wait_cuts(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until ``n`` resets (cut / cut_mid_frame) have happened in all."""
        with self._cond:
            return self._cond.wait_for(lambda: self.cuts >= n, timeout)

    def cut_mid_frame(self) -> None:
        """Reset the connections while forwarding the next server->client chunk, after only
        half of its bytes went through."""
        with self._cond:
            self._cut_mid_frame = True

    def refuse(self, on: bool = True) -> None:
        """Refuse (reset at once) new connections while ``on``; cut the open ones too."""
        with self._cond:
            self._refuse = on
        if on:
            self.cut()

    def batch_client_to_server(self, interval: Optional[float]) -> None:
        """Deliver the client's bytes every ``interval`` seconds in one send (None: at once)."""
        with self._cond:
            self._batch = interval

    def wait_connections(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until ``n`` connections have been accepted in all."""
        with self._cond:
            return self._cond.wait_for(lambda: self.accepted >= n, timeout)

    @property
    def open_connections(self) -> int:
        with self._cond:
            return sum(1 for p in self._pairs if not p.closed)

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.close()
        except OSError:
            pass
        self.cut()
        self.resume()

    def __enter__(self) -> "Relay":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- forwarding -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            with self._cond:
                refuse = self._refuse
            if refuse:
                _Pair(down, down).close(reset=True)
                continue
            try:
                up = socket.create_connection(self._target, timeout=5)
                up.settimeout(None)
            except OSError:
                down.close()
                continue
            for s in (down, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(down, up)
            with self._cond:
                self._pairs.append(pair)
                self.accepted += 1
                self._cond.notify_all()
            threading.Thread(target=self._pump, args=(pair, down, up, True), daemon=True,
                             name="relay-c2s").start()
            threading.Thread(target=self._pump, args=(pair, up, down, False), daemon=True,
                             name="relay-s2c").start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket, to_server: bool) -> None:
        pending = b""
        flush_at = 0.0
        try:
            while not pair.closed:
                with self._cond:
                    batch = self._batch if to_server else None
                timeout = max(0.0, flush_at - time.monotonic()) if (batch and pending) else 0.2
                ready, _, _ = select.select([src], [], [], timeout)
                if ready:
                    data = src.recv(1 << 16)
                    if not data:
                        if pending:
                            dst.sendall(pending)
                        break
                    if batch and not pending:
                        flush_at = time.monotonic() + batch
                    pending += data
                    if batch and time.monotonic() < flush_at:
                        continue  # everything the client sends until flush_at goes in one send
                if not pending or (batch and time.monotonic() < flush_at):
                    continue
                with self._cond:
                    self._cond.wait_for(lambda: not self._stalled or pair.closed)
                    cut = self._cut_mid_frame and not to_server
                    if cut:
                        self._cut_mid_frame = False
                if pair.closed:
                    break
                if cut:
                    dst.sendall(pending[: max(1, len(pending) // 2)])
                    with self._cond:
                        pairs, self._pairs = self._pairs, []
                        self._count_cut()
                    for p in pairs:
                        p.close(reset=True)
                    break
                dst.sendall(pending)
                pending = b""
        except OSError:
            pass
        finally:
            pair.close()
