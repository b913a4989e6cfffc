"""Helpers for the TriplitClient tests against the real server.

- :class:`Collector`: an ``on_results`` callback that records every call and lets the test wait
  (on a Condition) until the rows satisfy a predicate;
- :func:`normalize`: rows as plain JSON (dates as ISO strings, sets as sorted lists), so that a
  Python client's rows, the JS client's rows and the server's ``POST /fetch`` rows compare equal;
- :class:`SentLog`: records (and can hold back) what the client sends;
- :class:`DriverProcess`: a client in another process (Node's official client, or a Python
  client restarted as a new process) driven by JSON lines over stdin/stdout.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from triplit_sync import TriplitClient
from triplit_sync.testing import TriplitTestServer
from triplit_sync.wire.messages import Message

SUPPORT = Path(__file__).resolve().parent  # py_driver.py and js_driver.mjs sit here
ROOT = SUPPORT.parent.parent


def iso(value: _dt.datetime) -> str:
    value = value.astimezone(_dt.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def normalize(value: Any) -> Any:
    """Plain, order-insensitive-where-it-should-be JSON for comparing rows across clients."""
    if isinstance(value, Mapping):
        return {k: normalize(v) for k, v in value.items() if v is not None}
    if isinstance(value, (set, frozenset)):
        return sorted(normalize(v) for v in value)
    if isinstance(value, list):
        items = [normalize(v) for v in value]
        if all(not isinstance(v, (dict, list)) for v in items):
            return sorted(items, key=lambda x: (str(type(x)), x))
        return items
    if isinstance(value, _dt.datetime):
        return iso(value)
    return value


def server_rows(server: TriplitTestServer, query: Mapping[str, Any], token: Optional[str] = None) -> Any:
    """The server's own answer to ``query`` for ``token`` (POST /fetch), normalized."""
    q = {k: v for k, v in query.items() if k != "select"}
    status, body = server.post("fetch", {"query": q}, token=token)
    assert status == 200, (status, body)
    return normalize(body)


class Collector:
    """``on_results`` that records every call; ``wait(pred)`` blocks until the rows satisfy it."""

    def __init__(self) -> None:
        self.calls: List[List[Dict[str, Any]]] = []
        self.errors: List[BaseException] = []
        self.fulfilled = threading.Event()
        self.cond = threading.Condition()

    def __call__(self, rows: List[Dict[str, Any]]) -> None:
        with self.cond:
            self.calls.append(rows)
            self.cond.notify_all()

    def on_error(self, error: BaseException) -> None:
        with self.cond:
            self.errors.append(error)
            self.cond.notify_all()

    def on_remote_fulfilled(self) -> None:
        self.fulfilled.set()

    @property
    def latest(self) -> Optional[List[Dict[str, Any]]]:
        with self.cond:
            return self.calls[-1] if self.calls else None

    @property
    def count(self) -> int:
        with self.cond:
            return len(self.calls)

    def wait(self, pred: Callable[[List[Dict[str, Any]]], bool] = lambda rows: True,
             timeout: float = 10.0, *, after: int = 0) -> List[Dict[str, Any]]:
        """The first recorded rows (from call number ``after`` on) satisfying ``pred``."""
        deadline = time.monotonic() + timeout
        seen = after
        with self.cond:
            while True:
                while seen < len(self.calls):
                    if pred(self.calls[seen]):
                        return self.calls[seen]
                    seen += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no results matched within {timeout} s; "
                                         f"last: {self.latest!r:.2000}")
                self.cond.wait(remaining)

    def wait_ids(self, ids: Sequence[str], timeout: float = 10.0) -> List[Dict[str, Any]]:
        want = sorted(ids)
        return self.wait(lambda rows: sorted(r["id"] for r in rows) == want, timeout)

    def wait_error(self, timeout: float = 10.0) -> BaseException:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.errors:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no error reported")
                self.cond.wait(remaining)
            return self.errors[0]

    def quiet(self, period: float = 0.3) -> None:
        """Wait until no call arrived for ``period`` seconds (to assert that nothing else comes)."""
        with self.cond:
            while True:
                n = len(self.calls)
                self.cond.wait(period)
                if len(self.calls) == n:
                    return


def wait_equal_to_server(client: TriplitClient, server: TriplitTestServer, query: Mapping[str, Any],
                         token: str, collector: Optional[Collector] = None, timeout: float = 15.0) -> Any:
    """Wait until the client's local results for ``query`` equal the server's (for ``token``).

    The server is asked again whenever the local rows change or half a second passes, so a
    write still travelling to either side cannot make the comparison pass or fail by luck.
    """
    deadline = time.monotonic() + timeout
    expected: Any = None
    local: Any = None
    while time.monotonic() < deadline:
        expected = server_rows(server, query, token)
        local = normalize(client.fetch(query, policy="local-only"))
        if local == expected:
            return expected
        if collector is not None:
            n = collector.count
            with collector.cond:
                collector.cond.wait_for(lambda: len(collector.calls) != n, 0.5)
        else:
            threading.Event().wait(0.1)  # nothing to wait on: poll the client's local state
    raise AssertionError(f"local results never equalled the server's:\nlocal:  {local!r:.3000}\n"
                         f"server: {expected!r:.3000}")


class SentLog:
    """Records every message the client's transport sends (type, message), in order.

    ``hold("CHANGES")`` makes matching sends report success without writing anything: the
    batch is then "in flight" and its ACK never comes, as when a connection drops right after
    a write.
    """

    def __init__(self, client: TriplitClient) -> None:
        self.messages: List[Message] = []
        self.held: List[Message] = []
        self._hold: Optional[str] = None
        self._lock = threading.Condition()
        transport = client._transport
        original = transport.send

        def send(msg: Message) -> bool:
            with self._lock:
                if self._hold is not None and msg.TYPE == self._hold:
                    self.held.append(msg)
                    self._lock.notify_all()
                    return True
            ok = original(msg)
            if ok:
                with self._lock:
                    self.messages.append(msg)
            return ok

        transport.send = send  # type: ignore[method-assign]
        engine = client._engine
        with engine._lock:
            if engine._send is not None:  # already READY: the engine holds the original
                engine._send = send

    def hold(self, msg_type: Optional[str]) -> None:
        with self._lock:
            self._hold = msg_type

    def wait_held(self, n: int, timeout: float = 10.0) -> None:
        """Wait until ``n`` messages were held (a CHANGES may wait a round trip for the send
        order of _wireorder.py before it goes)."""
        with self._lock:
            assert self._lock.wait_for(lambda: len(self.held) >= n, timeout), f"{len(self.held)} held, not {n}"

    def types(self) -> List[str]:
        with self._lock:
            return [m.TYPE for m in self.messages]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()


class DriverProcess:
    """A client in another process, driven by JSON lines (tests/support/js_driver.mjs, tests/support/py_driver.py)."""

    def __init__(self, argv: List[str], cwd: Optional[Path] = None,
                 env: Optional[Dict[str, str]] = None) -> None:
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self._replies: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self.events: "queue.Queue[Dict[str, Any]]" = queue.Queue()  # unasked lines: {"event": ...}
        self._eof = threading.Event()
        self._next = 0
        self.stderr: List[str] = []
        threading.Thread(target=self._read, daemon=True, name="driver-stdout").start()
        threading.Thread(target=self._read_err, daemon=True, name="driver-stderr").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                obj = json.loads(line)
                (self.events if "event" in obj and "id" not in obj else self._replies).put(obj)
        self._replies.put({"id": None, "ok": False, "error": "the driver process exited"})
        self._eof.set()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def call(self, cmd: str, **args: Any) -> Any:
        """Send a request and return its result; ``args`` (``timeout`` too) go to the driver,
        which gets that long plus 30 s to answer."""
        timeout = float(args.get("timeout") or 0) + 30.0
        self._next += 1
        rid = self._next
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": rid, "cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"driver: no reply to {cmd} within {timeout} s; stderr:\n"
                                     + "".join(self.stderr[-30:])) from None
            if reply.get("id") is None:
                raise AssertionError(f"driver died during {cmd}; stderr:\n" + "".join(self.stderr[-30:]))
            if reply["id"] == rid:
                if not reply["ok"]:
                    raise AssertionError(f"driver {cmd} failed: {reply['error']}")
                return reply.get("result")

    def close(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                self.call("close")
            except (AssertionError, OSError, ValueError):
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        self.close()

    def drain_events(self, timeout: float = 10.0) -> List[Dict[str, Any]]:
        """After the process ended (killed or not): every event it wrote, in order (the pipe
        keeps what was written before a SIGKILL)."""
        self._eof.wait(timeout)
        out: List[Dict[str, Any]] = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out


def python_driver(**options: Any) -> DriverProcess:
    """A TriplitClient in a new Python process (tests/support/py_driver.py), configured by ``options``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    driver = DriverProcess([sys.executable, str(SUPPORT / "py_driver.py"), json.dumps(options)], env=env)
    return driver


def js_driver() -> DriverProcess:
    """The official @triplit/client 1.0.50 under Node (tests/support/js_driver.mjs)."""
    from triplit_sync.testing import ensure_js_client_installed

    folder = ensure_js_client_installed()
    node = os.environ.get("TRIPLIT_SYNC_NODE", "node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    major = int(version.strip().lstrip("v").split(".")[0])
    # The JS client needs a WHATWG WebSocket (an EventTarget): global from Node 22, behind a flag before.
    flags = ["--experimental-websocket"] if major < 22 else []
    return DriverProcess([node, *flags, str(SUPPORT / "js_driver.mjs"), str(folder)], cwd=folder)
