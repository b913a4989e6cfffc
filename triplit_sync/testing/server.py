"""A real Triplit server for tests: one ``node`` process on a free 127.0.0.1 port, started,
stopped and restarted by :class:`TriplitTestServer`, shared by a test process through
:func:`shared_server` (the package docstring shows how to use them)."""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .._util.types import StorageKind
from . import _install
from ._install import TestServerError
from ._tokens import DEFAULT_SECRET, KeyPair, mint_token

__all__ = ["SchemaArg", "TriplitTestServer", "shared_server"]

logger = logging.getLogger(__name__)

SchemaArg = Union[None, str, "os.PathLike[str]", Mapping[str, Any]]


# --------------------------------------------------------------------------- the server process

_live_servers: "set[TriplitTestServer]" = set()
_live_lock = threading.Lock()


def _stop_all_at_exit() -> None:
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        server.stop()


atexit.register(_stop_all_at_exit)

_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TriplitTestServer:
    """A real ``@triplit/server`` on a free 127.0.0.1 port, for the length of a ``with`` block.

    ``schema`` is ``None`` (schemaless), a dict in the server's JSON schema format, or the path
    of such a JSON file (``triplit_sync.schema.Schema`` objects work too). ``storage`` is
    ``"memory"`` or ``"sqlite"`` (durable: data survives :meth:`restart`). The first start on
    a machine installs the server's Node packages (about a minute) and reports each step to
    ``progress`` (default: stderr; ``None``: silent).

        with TriplitTestServer(schema=my_schema) as server:
            client = TriplitClient(server.url, token=server.user_token("alice"), storage="memory")

    Tokens of an identity provider: ``external_key`` is what verifies tokens without an internal
    ``x-triplit-token-type`` (the server's ``externalJwtSecret``): a :class:`KeyPair`, a public
    key PEM (RSA or EC), a JWK (JSON text) or an HMAC secret; ``claims_path`` (the server's
    ``claimsPath``) is where such a token keeps its Triplit claims, e.g. an Auth0 namespace.
    Internal tokens (``service_token()``, ``user_token()``...) keep working with ``secret``.

        keys = generate_key_pair()
        with TriplitTestServer(schema, claims_path="https://triplit/claims", external_key=keys) as server:
            token = server.external_token(auth0_claims("auth0|alice"), expires_in=3600)
    """

    __test__ = False

    def __init__(
        self,
        schema: SchemaArg = None,
        *,
        storage: StorageKind = "memory",
        secret: Optional[str] = None,
        port: int = 0,
        db_path: Optional[Union[str, "os.PathLike[str]"]] = None,
        verbose: bool = False,
        startup_timeout: float = 120.0,
        claims_path: Optional[str] = None,
        external_key: Union[None, str, KeyPair] = None,
        progress: _install.ProgressArg = _install.stderr_progress,
    ) -> None:
        if claims_path is not None and (not isinstance(claims_path, str)
                                        or not all(claims_path.split("."))):
            raise ValueError(f"claims_path must be dotted claim names, none empty, not {claims_path!r}")
        if external_key is not None and not isinstance(external_key, (str, KeyPair)):
            raise TypeError("external_key must be a KeyPair, a PEM / JWK string or an HMAC secret, "
                            f"not {type(external_key).__name__}")
        if storage not in ("memory", "sqlite"):
            raise ValueError(f"storage must be 'memory' or 'sqlite', not {storage!r}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int from 0 to 65535, not {port!r}")
        self.secret = secret or DEFAULT_SECRET
        self.storage = storage
        self.port = port
        self.verbose = verbose
        self.startup_timeout = startup_timeout
        self.progress = progress
        self._workdir = Path(tempfile.mkdtemp(prefix="triplit-test-server-"))
        self.claims_path = claims_path
        #: the key pair external tokens are signed with, when ``external_key`` was one
        self.external_keys: Optional[KeyPair] = external_key if isinstance(external_key, KeyPair) else None
        self._external_key_path: Optional[Path] = None
        if external_key is not None:
            text = external_key.public_pem if isinstance(external_key, KeyPair) else external_key
            if not text.strip():
                raise ValueError("external_key is empty")
            self._external_key_path = self._workdir / "external-key"
            fd = os.open(self._external_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        self.schema_path: Optional[Path] = self._write_schema(schema)
        self.db_path: Optional[Path] = None
        if storage == "sqlite":
            self.db_path = Path(db_path) if db_path else self._workdir / "server.sqlite"
        self._proc: Optional["subprocess.Popen[str]"] = None
        self._stderr: Optional[Any] = None
        self._lock = threading.RLock()

    def _write_schema(self, schema: SchemaArg) -> Optional[Path]:
        if schema is None:
            return None
        if isinstance(schema, (str, os.PathLike)):
            path = Path(schema).resolve()  # the server runs in another folder
            if not path.is_file():
                raise ValueError(f"schema file {str(path)!r} does not exist")
            return path
        to_json = getattr(schema, "to_json", None)
        data = to_json() if callable(to_json) else schema
        if not isinstance(data, Mapping) or "collections" not in data:
            raise ValueError("schema must be a path, a Schema, or a dict with 'collections'")
        path = self._workdir / "schema.json"
        path.write_text(json.dumps(data))
        return path

    # ----------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        """The server's HTTP URL, e.g. ``http://127.0.0.1:41235``."""
        if not self.port:
            raise TestServerError("the server has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "TriplitTestServer":
        """Start the server (on the same port as before, if it ran before) and wait until it is healthy."""
        with self._lock:
            if self.running:
                return self
            folder = _install.ensure_server_installed(self.progress)
            node = _install.node_executable()
            cmd = [node, str(folder / _install.script_name()), "--port", str(self.port),
                   "--secret", self.secret, "--storage", self.storage, "--exit-with-stdin"]
            if self.claims_path is not None:
                cmd += ["--claims-path", self.claims_path]
            if self._external_key_path is not None:
                cmd += ["--external-secret-file", str(self._external_key_path)]
            if self.db_path is not None:
                cmd += ["--db-path", str(self.db_path)]
            if self.schema_path is not None:
                cmd += ["--schema", str(self.schema_path)]
            if self.verbose:
                cmd.append("--verbose")
            self._stderr = tempfile.TemporaryFile(mode="w+")
            self._proc = subprocess.Popen(
                cmd,
                cwd=folder,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                start_new_session=True,  # its own process group, so stop() can kill all of it
            )
            with _live_lock:
                _live_servers.add(self)
            try:
                self.port = self._await_ready()
                self._await_healthy()
            except BaseException:
                self.stop()
                raise
            logger.debug("Triplit test server listening on %s", self.url)
            return self

    def _await_ready(self) -> int:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        found: List[int] = []
        done = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not found and line.startswith("TRIPLIT_SERVER_READY "):
                    found.append(int(json.loads(line.split(" ", 1)[1])["port"]))
                    done.set()
                elif self.verbose:
                    logger.info("server: %s", line.rstrip())
            done.set()

        threading.Thread(target=read, name="triplit-test-server-stdout", daemon=True).start()
        if not done.wait(self.startup_timeout) or not found:
            raise TestServerError(f"the Triplit server did not start: {self._failure_text()}")
        return found[0]

    def _await_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                with _NO_PROXY_OPENER.open(self.url + "/healthcheck", timeout=5) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if not self.running or time.monotonic() > deadline:
                raise TestServerError(f"the Triplit server is not healthy: {self._failure_text()}")
            time.sleep(0.05)  # waiting on another process's socket: nothing to wait on but time

    def _failure_text(self) -> str:
        code = self._proc.poll() if self._proc else None
        err = ""
        if self._stderr is not None:
            try:
                self._stderr.seek(0)
                err = self._stderr.read()[-3000:]
            except (OSError, ValueError):
                pass
        return f"exit code {code}; stderr:\n{err}" if err else f"exit code {code}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server and every process in its group. Safe to call twice."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                _kill_group(proc, timeout)
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None
            with _live_lock:
                _live_servers.discard(self)

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would (the port is kept for :meth:`start`)."""
        with self._lock:
            proc = self._proc
            if proc is not None:
                _kill_group(proc, 0)
            self.stop()

    def restart(self) -> "TriplitTestServer":
        """Stop and start again on the same port; with ``storage="sqlite"`` the data survives."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove its temporary files."""
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> "TriplitTestServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<TriplitTestServer {self.url if self.port else '(no port)'} {self.storage} {state}>"

    # ----------------------------------------------------------------- tokens and data

    def token(self, claims: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> str:
        """Mint a token for this server; keyword arguments as in :func:`mint_token`."""
        return mint_token(self.secret, claims, **kwargs)

    def service_token(self) -> str:
        """A service (``secret``) token: bypasses every permission rule."""
        return mint_token(self.secret, token_type="secret")

    def anon_token(self) -> str:
        """An anonymous token (the ``anonymous`` role)."""
        return mint_token(self.secret, token_type="anon")

    def user_token(self, sub: str, *, expires_in: Optional[float] = None, **claims: Any) -> str:
        """A user token with ``sub`` and any extra claims."""
        return mint_token(self.secret, claims, sub=sub, expires_in=expires_in)

    def external_token(self, claims: Mapping[str, Any], *, expires_in: Optional[float] = None) -> str:
        """A token as an identity provider would sign it, with the server's ``external_key`` pair.

        Shape ``claims`` with :func:`auth0_claims`, :func:`clerk_claims` or :func:`supabase_claims`."""
        if self.external_keys is None:
            raise TestServerError("external_token() needs TriplitTestServer(external_key=KeyPair)")
        return self.external_keys.sign(claims, expires_in=expires_in)

    def post(self, route: str, body: Any, token: Optional[str] = None) -> Tuple[int, Any]:
        """POST a JSON body to a route with the service token (or ``token``); returns (status, body)."""
        req = urllib.request.Request(
            f"{self.url}/{route.lstrip('/')}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token or self.service_token()}",
                     "Content-Type": "application/json"},
        )
        try:
            with _NO_PROXY_OPENER.open(req, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def reset(self) -> None:
        """Delete every entity (the schema stays)."""
        status, body = self.post("clear", {})
        if status != 200:
            raise TestServerError(f"clearing the test server failed: {status} {body}")


def _signal_group(proc: "subprocess.Popen[Any]", sig: int) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, sig)  # the server leads its own group (start_new_session)
        else:  # pragma: no cover - Windows has no process groups of this kind
            proc.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(proc: "subprocess.Popen[Any]", timeout: float) -> None:
    if timeout > 0:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Also when the leader exited: anything it started must not outlive it.
    _signal_group(proc, getattr(signal, "SIGKILL", signal.SIGTERM))
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:  # pragma: no cover
        logger.warning("Triplit test server pid %s did not exit", proc.pid)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


# --------------------------------------------------------------------------- shared servers

_shared: Dict[Tuple[Optional[str], str], TriplitTestServer] = {}
_shared_lock = threading.Lock()


def shared_server(schema: SchemaArg = None, *, storage: StorageKind = "memory",
                  progress: _install.ProgressArg = _install.stderr_progress) -> TriplitTestServer:
    """One running server per (schema, storage) for the whole test process, stopped at exit."""
    if schema is None or isinstance(schema, (str, os.PathLike)):
        key_schema = None if schema is None else str(Path(schema).resolve())
    else:
        to_json = getattr(schema, "to_json", None)
        key_schema = json.dumps(to_json() if callable(to_json) else schema, sort_keys=True)
    key = (key_schema, storage)
    with _shared_lock:
        server = _shared.get(key)
        if server is None or not server.running:
            server = TriplitTestServer(schema, storage=storage, progress=progress)
            server.start()
            _shared[key] = server
        return server


def _close_shared() -> None:
    with _shared_lock:
        servers = list(_shared.values())
        _shared.clear()
    for server in servers:
        server.close()


atexit.register(_close_shared)
