"""Installing the pinned ``@triplit/server`` and its Node dependencies (``npm ci``) into a
per-version folder under the user cache dir, once, shared by every process; the official JS
client (for interop tests and benchmarks only) in a folder of its own. A first install says
what it installs and shows its progress: it takes about a minute (better-sqlite3 builds from
source where no prebuilt binary downloads)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Dict, Optional

from .._util.filelock import FileLock
from ..errors import TriplitError

__all__ = [
    "JS_CLIENT_SOURCE", "SERVER_SOURCE", "TestServerError", "ensure_js_client_installed",
    "ensure_server_installed", "node_executable", "script_name", "show_progress_in", "stderr_progress",
]

logger = logging.getLogger(__name__)

SERVER_SOURCE = Path(__file__).parent.parent / "server"
#: The official JS client, pinned apart from the server: the interop tests and the benchmarks
#: need it, the server and ``triplit-sync dev`` do not.
JS_CLIENT_SOURCE = SERVER_SOURCE / "js-client"
_INSTALLED_MARKER = ".triplit-sync-installed"


class TestServerError(TriplitError):
    """The local test server could not be installed or started; the message says why and how to fix it."""

    __test__ = False  # not a test class, despite the name



def _which(name: str, env_var: str) -> str:
    found = os.environ.get(env_var) or shutil.which(name)
    if not found:
        raise TestServerError(
            f"`{name}` was not found on PATH. The local Triplit server runs on Node.js 18 or newer: "
            f"install Node.js and npm (for example `apt install nodejs npm`, or from https://nodejs.org), "
            f"or point the {env_var} environment variable at the `{name}` executable."
        )
    return found


def _cache_root() -> Path:
    override = os.environ.get("TRIPLIT_SYNC_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_path("triplit_sync", appauthor=False))


def _install_key(source: Path = SERVER_SOURCE) -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        h.update((source / name).read_bytes())
    return h.hexdigest()[:16]


def _npm_env(node: str) -> Dict[str, str]:
    env = dict(os.environ)
    # better-sqlite3 (the server's durable storage) has no prebuilt binary here; it compiles
    # against the local Node headers, which node-gyp only finds when told where they are.
    if not any(k.lower() == "npm_config_nodedir" for k in env):
        prefix = Path(os.path.realpath(node)).parent.parent
        if (prefix / "include" / "node" / "node.h").exists():
            env["npm_config_nodedir"] = str(prefix)
    env.setdefault("npm_config_audit", "false")
    env.setdefault("npm_config_fund", "false")
    env.setdefault("npm_config_update_notifier", "false")
    return env


ProgressArg = Optional[Callable[[str], None]]


#: Where :func:`stderr_progress` sends its lines instead of stderr: the pytest plugin sets pytest's
#: terminal here, because pytest captures stderr and a first run would look silent.
terminal_reporter: Optional[Callable[[str], None]] = None


def show_progress_in(reporter: Optional[Callable[[str], None]]) -> None:
    """Send :func:`stderr_progress`'s lines to ``reporter`` (``None``: back to stderr)."""
    global terminal_reporter
    terminal_reporter = reporter


def stderr_progress(line: str) -> None:
    """The default install reporter: one line per step on stderr (or pytest's terminal while the
    pytest plugin is active), where it shows while the first run waits."""
    reporter = terminal_reporter
    if reporter is not None:
        reporter(line)
        return
    sys.stderr.write(f"triplit_sync: {line}\n")
    sys.stderr.flush()


def ensure_server_installed(progress: ProgressArg = stderr_progress) -> Path:
    """Install the pinned server's Node dependencies once per version; return the folder.

    Parallel test processes share one install: a file lock makes all but one wait.
    ``TRIPLIT_SYNC_SERVER_DIR`` may point at a folder that already holds a ``node_modules``.
    ``progress`` gets a line per step of a first install (``None``: silent).
    """
    override = os.environ.get("TRIPLIT_SYNC_SERVER_DIR")
    if override:
        target = Path(override)
        if not (target / "node_modules").is_dir():
            raise TestServerError(f"TRIPLIT_SYNC_SERVER_DIR={override} has no node_modules folder")
        _copy_script(target)
        return target
    target = _ensure_package(SERVER_SOURCE, "server", "the Triplit server", progress)
    _copy_script(target)
    return target


def ensure_js_client_installed(progress: ProgressArg = stderr_progress) -> Path:
    """Install the pinned official JS client (``@triplit/client``, for interop tests and the
    benchmarks) once per version, apart from the server's packages; return the folder that
    holds its ``node_modules``."""
    return _ensure_package(JS_CLIENT_SOURCE, "js-client", "the official Triplit JS client", progress)


def _ensure_package(source: Path, kind: str, what: str, progress: ProgressArg) -> Path:
    target = _cache_root() / f"{kind}-{_install_key(source)}"
    if (target / _INSTALLED_MARKER).exists():
        return target
    node = _which("node", "TRIPLIT_SYNC_NODE")
    npm = _which("npm", "TRIPLIT_SYNC_NPM")
    lock = FileLock(str(target) + ".lock")
    if not lock.acquire(timeout=0):
        _say(progress, f"waiting for another process that installs {what} into {target}")
        lock.acquire()
    try:
        if not (target / _INSTALLED_MARKER).exists():
            _npm_ci(npm, node, source, target, what, progress)
    finally:
        lock.release()
    return target


def _say(progress: ProgressArg, line: str) -> None:
    logger.info("%s", line)
    if progress is not None:
        progress(line)


def _npm_ci(npm: str, node: str, source: Path, target: Path, what: str, progress: ProgressArg) -> None:
    staging = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(source / name, staging / name)
    total = _package_count(source)
    pinned = source / "package.json"
    _say(progress, f"first run: installing {what} ({total} Node packages, pinned in {pinned}) "
                   f"into {target} with `npm ci`; later runs reuse it")
    started = time.monotonic()
    proc = subprocess.Popen(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=http", "--foreground-scripts"],
        cwd=staging, env=_npm_env(node), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    tail: "deque[str]" = deque(maxlen=60)
    meter = _NpmMeter(total, lambda line: _say(progress, line))
    done = threading.Event()

    def ticker() -> None:
        while not done.wait(1.0):
            meter.tick()

    threading.Thread(target=ticker, name="triplit-npm-progress", daemon=True).start()
    try:
        for line in proc.stdout:
            tail.append(line)
            meter.feed(line)
        code = proc.wait()
    finally:
        done.set()
    if code != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise TestServerError(f"`npm ci` for {what} failed (exit {code}) in {staging}:\n"
                              + "".join(tail)[-4000:])
    (staging / _INSTALLED_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    _say(progress, f"installed {what} in {time.monotonic() - started:.0f} s")


def _package_count(source: Path) -> int:
    try:
        packages = json.loads((source / "package-lock.json").read_text())["packages"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return sum(1 for key in packages if key)


class _NpmMeter:
    """Turns npm's ``--loglevel=http --foreground-scripts`` output into a few progress lines:
    downloads every few seconds, the native build (better-sqlite3 from source, about a minute)
    when it starts, and, from :meth:`tick` (a timer), a line every 15 s of silence, so that a
    long compile never looks like a hang."""

    EVERY = 5.0
    QUIET = 15.0

    def __init__(self, total: int, say: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.say = say
        self.clock = clock
        self.fetched = 0
        self.started = self.last = clock()
        self.building: Optional[str] = None
        self._lock = threading.Lock()

    def feed(self, line: str) -> None:
        with self._lock:
            now = self.clock()
            if "http fetch" in line:
                self.fetched += 1
                if now - self.last >= self.EVERY:
                    self.last = now
                    self.say(f"  npm: {self.fetched} downloads so far")
                return
            match = re.match(r"> (\S+)@\S+ (install|postinstall)", line)
            if match:
                self.building = match.group(1)
                self.last = now
                if self.building == "better-sqlite3":
                    self.say("  npm: building better-sqlite3 from source (no prebuilt binary here; "
                             "takes about a minute)")
                else:
                    self.say(f"  npm: running {self.building}'s install script")

    def tick(self) -> None:
        with self._lock:
            now = self.clock()
            if now - self.last >= self.QUIET:
                self.last = now
                doing = f"on {self.building}" if self.building else "installing"
                self.say(f"  npm: still {doing} ({now - self.started:.0f} s)")


def script_name(name: str = "server.mjs") -> str:
    """The file name the installed copy of ``name`` has: its own content hash in the name.

    Every triplit_sync that shares a cache folder (other virtualenvs, other checkouts with the
    same pinned server) copies its scripts next to the same ``node_modules``; under one name,
    a version that copied its script last would start the other's server, with options that
    script does not know."""
    digest = hashlib.sha256((SERVER_SOURCE / name).read_bytes()).hexdigest()[:12]
    stem, _, ext = name.rpartition(".")
    return f"{stem}-{digest}.{ext}"


def _copy_script(target: Path) -> None:
    # The script must sit next to node_modules so that Node resolves its imports there.
    for name in os.listdir(SERVER_SOURCE):
        if name.endswith(".mjs"):
            src = (SERVER_SOURCE / name).read_bytes()
            dest = target / script_name(name)
            if not dest.exists() or dest.read_bytes() != src:
                tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
                tmp.write_bytes(src)
                os.replace(tmp, dest)


def node_executable() -> str:
    """The ``node`` to run the server with (``TRIPLIT_SYNC_NODE``, else the one on PATH)."""
    return _which("node", "TRIPLIT_SYNC_NODE")
