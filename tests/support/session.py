"""Shared helpers for the session tests (not a test module): event collectors, a wire spy on a
client's transport, a client factory that always closes, and a runner for subprocess scripts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from triplit_sync.client import TriplitClient
from triplit_sync.wire.messages import Message

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_SCHEMA = ROOT / "tests" / "fixtures" / "sample-schema.json"
PYTHON = sys.executable


class Events:
    """Thread-safe record of what callbacks saw: ``(kind, value, thread name, time.time())``."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.items: List[Tuple[str, Any, str, float]] = []

    def add(self, kind: str, value: Any = None) -> None:
        with self.cond:
            self.items.append((kind, value, threading.current_thread().name, time.time()))
            self.cond.notify_all()

    def recorder(self, kind: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.add(kind, args[0] if args else None)

        return record

    def of(self, kind: str) -> List[Tuple[str, Any, str, float]]:
        with self.cond:
            return [item for item in self.items if item[0] == kind]

    def values(self, kind: str) -> List[Any]:
        return [item[1] for item in self.of(kind)]

    def wait_for(self, pred: Callable[[], Any], timeout: float = 10.0) -> bool:
        with self.cond:
            return bool(self.cond.wait_for(pred, timeout))

    def wait_count(self, kind: str, n: int = 1, timeout: float = 10.0) -> List[Tuple[str, Any, str, float]]:
        assert self.wait_for(lambda: len(self.of(kind)) >= n, timeout), (
            f"{kind}: {len(self.of(kind))} of {n} events within {timeout} s; saw {self.items!r:.500}")
        return self.of(kind)


class WireSpy:
    """Records every message a client sends and receives on its current transport.

    Attach it before the client connects (``auto_connect=False``) to see READY too: the sync
    engine captures ``transport.send`` when READY arrives.
    """

    def __init__(self, client: TriplitClient) -> None:
        self.events = Events()
        transport = client._transport
        send, on_message = transport.send, transport._on_message

        def spy_send(msg: Message) -> bool:
            ok = send(msg)
            self.events.add("sent" if ok else "unsent", msg)
            return ok

        def spy_receive(msg: Message) -> None:
            self.events.add("received", msg)
            on_message(msg)

        transport.send = spy_send  # type: ignore[method-assign]
        transport._on_message = spy_receive  # type: ignore[method-assign]

    def sent(self, mtype: str) -> List[Message]:
        return [m for m in self.events.values("sent") if m.TYPE == mtype]

    def received(self, mtype: str) -> List[Message]:
        return [m for m in self.events.values("received") if m.TYPE == mtype]

    def wait_sent(self, mtype: str, n: int = 1, timeout: float = 10.0) -> List[Message]:
        assert self.events.wait_for(lambda: len(self.sent(mtype)) >= n, timeout), f"{mtype} not sent"
        return self.sent(mtype)

    def wait_received(self, mtype: str, n: int = 1, timeout: float = 10.0) -> List[Message]:
        assert self.events.wait_for(lambda: len(self.received(mtype)) >= n, timeout), f"no {mtype}"
        return self.received(mtype)


class ClientFactory:
    """Makes clients (memory storage unless told otherwise) and closes them all at teardown."""

    def __init__(self) -> None:
        self.made: List[TriplitClient] = []

    def __call__(self, url: str, token: Optional[str] = None, **kw: Any) -> TriplitClient:
        kw.setdefault("storage", "memory")
        client = TriplitClient(url, token, **kw)
        self.made.append(client)
        return client

    def close_all(self) -> None:
        for client in self.made:
            client.close()


def session_errors(client: TriplitClient) -> Events:
    """An Events that records every session error (kind "session_error") and refresh error."""
    events = Events()
    client.on_session_error(events.recorder("session_error"))
    client.on_refresh_error(events.recorder("refresh_error"))
    return events


def ready_count(client: TriplitClient) -> Callable[[], int]:
    """A counter of READY messages on ``client``'s transport from now on."""
    seen = [0]
    on_message = client._transport._on_message

    def spy(msg: Message) -> None:
        if msg.TYPE == "READY":
            seen[0] += 1
        on_message(msg)

    client._transport._on_message = spy  # type: ignore[method-assign]
    return lambda: seen[0]


def wait_until(pred: Callable[[], Any], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``pred`` (for state with no event to wait on, e.g. a file written by another process)."""
    deadline = time.monotonic() + timeout
    idle = threading.Event()
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        idle.wait(step)


# --------------------------------------------------------------------------- subprocesses


def script_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def default_sigint() -> None:
    """In the child before exec: Ctrl-C does what it does in a terminal. A suite started in the
    background by a non-interactive shell inherits SIGINT ignored, and Python keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Script:
    """A Python script in a subprocess whose stdout lines can be awaited one by one."""

    def __init__(self, code: str, *args: str, **env: str) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-c", textwrap.dedent(code), *args], cwd=str(ROOT), env=script_env(**env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
        )
        self.cond = threading.Condition()
        self.lines: List[Tuple[float, str]] = []
        self.stderr = ""
        self.exited_at: Optional[float] = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.cond.notify_all()
        self.proc.wait()
        with self.cond:
            self.exited_at = time.monotonic()
            self.cond.notify_all()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def wait_line(self, prefix: str, timeout: float = 20.0) -> Tuple[float, str]:
        def found() -> Optional[Tuple[float, str]]:
            return next(((t, line) for t, line in self.lines if line.startswith(prefix)), None)

        with self.cond:
            ok = self.cond.wait_for(lambda: found() is not None or self.exited_at is not None, timeout)
            hit = found()
        if hit is None:
            self._err_reader.join(2)
            raise AssertionError(f"no line {prefix!r} within {timeout} s (exited={self.exited_at is not None}, "
                                 f"ok={ok}); stdout={[line for _, line in self.lines]} stderr={self.stderr[-3000:]}")
        return hit

    def wait_exit(self, timeout: float = 20.0) -> int:
        with self.cond:
            self.cond.wait_for(lambda: self.exited_at is not None, timeout)
        if self.exited_at is None:
            self.kill()
            raise AssertionError(f"the script did not exit within {timeout} s; stdout={self.output()}")
        self._err_reader.join(5)
        return self.proc.returncode

    def output(self) -> List[str]:
        with self.cond:
            return [line for _, line in self.lines]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def run_script(code: str, *args: str, timeout: float = 30.0, **env: str) -> Tuple[int, List[str], str]:
    """Run a script to its end; returns (exit code, stdout lines, stderr)."""
    script = Script(code, *args, **env)
    code_ = script.wait_exit(timeout)
    return code_, script.output(), script.stderr


def iter_lines(lines: List[str], prefix: str) -> Iterator[str]:
    for line in lines:
        if line.startswith(prefix):
            yield line[len(prefix):].strip()


# --------------------------------------------------------------------------- the clients fixture


def client_factory() -> Iterator[ClientFactory]:
    """Body of each module's ``clients`` fixture: ``clients(url, token, **kw)`` makes a
    TriplitClient (memory storage by default); every one is closed after the test."""
    factory = ClientFactory()
    yield factory
    factory.close_all()
