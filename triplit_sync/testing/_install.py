"""Installing the pinned ``@triplit/server`` and its Node dependencies (``npm ci``) into a
per-version folder under the user cache dir, once, shared by every process."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Dict

from .._util.filelock import FileLock
from ..errors import TriplitError

__all__ = ["SERVER_SOURCE", "TestServerError", "ensure_server_installed", "node_executable"]

logger = logging.getLogger(__name__)

SERVER_SOURCE = Path(__file__).parent.parent / "server"
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


def _install_key() -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        h.update((SERVER_SOURCE / name).read_bytes())
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


def ensure_server_installed() -> Path:
    """Install the pinned server's Node dependencies once per version; return the folder.

    Parallel test processes share one install: a file lock makes all but one wait.
    ``TRIPLIT_SYNC_SERVER_DIR`` may point at a folder that already holds a ``node_modules``.
    """
    override = os.environ.get("TRIPLIT_SYNC_SERVER_DIR")
    if override:
        target = Path(override)
        if not (target / "node_modules").is_dir():
            raise TestServerError(f"TRIPLIT_SYNC_SERVER_DIR={override} has no node_modules folder")
        _copy_script(target)
        return target
    target = _cache_root() / f"server-{_install_key()}"
    if (target / _INSTALLED_MARKER).exists():
        _copy_script(target)
        return target
    node = _which("node", "TRIPLIT_SYNC_NODE")
    npm = _which("npm", "TRIPLIT_SYNC_NPM")
    with FileLock(str(target) + ".lock"):
        if not (target / _INSTALLED_MARKER).exists():
            _npm_ci(npm, node, target)
    _copy_script(target)
    return target


def _npm_ci(npm: str, node: str, target: Path) -> None:
    staging = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(SERVER_SOURCE / name, staging / name)
    logger.info("installing the Triplit server's Node dependencies into %s (first use only)", target)
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=staging,
        env=_npm_env(node),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise TestServerError(
            f"`npm ci` for the Triplit server failed (exit {proc.returncode}) in {staging}:\n"
            + proc.stdout[-4000:]
        )
    (staging / _INSTALLED_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def _copy_script(target: Path) -> None:
    # The script must sit next to node_modules so that Node resolves its imports there.
    for name in os.listdir(SERVER_SOURCE):
        if name.endswith(".mjs"):
            src = (SERVER_SOURCE / name).read_bytes()
            dest = target / name
            if not dest.exists() or dest.read_bytes() != src:
                tmp = dest.with_name(f".{name}.{os.getpid()}")
                tmp.write_bytes(src)
                os.replace(tmp, dest)


def node_executable() -> str:
    """The ``node`` to run the server with (``TRIPLIT_SYNC_NODE``, else the one on PATH)."""
    return _which("node", "TRIPLIT_SYNC_NODE")
