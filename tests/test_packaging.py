"""The wheel works on its own: `pip wheel .`, installed in a fresh venv, carries the server's package
files, and its `triplit-sync dev` serves the README's quick tour, run by the venv's Python."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.dev import running_dev
from tests.test_readme import BLOCKS, DEV_URL

pytestmark = pytest.mark.server  # the wheel's `triplit-sync dev` runs Node

REPO = Path(__file__).resolve().parent.parent
SERVER_FILES = {"package.json", "package-lock.json", "server.mjs", "demo-schema.json",
                "js-client/package.json", "js-client/package-lock.json"}


def _clean_env(tmp_path: Path) -> "dict[str, str]":
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "VIRTUAL_ENV")}
    env["XDG_DATA_HOME"] = str(tmp_path / "user-data")
    return env


def test_the_wheel_installs_in_a_fresh_venv_and_runs_the_quick_tour(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(tmp_path / "dist")],
                   check=True, env=env, cwd=tmp_path, timeout=300, capture_output=True)
    wheel = next((tmp_path / "dist").glob("triplit_sync-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"triplit_sync/server/{name}" for name in SERVER_FILES} <= names, sorted(names)
    assert "triplit_sync/py.typed" in names and not [n for n in names if n.startswith(("tests/", "examples/"))]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    where = subprocess.run([str(py), "-c", "import triplit_sync; print(triplit_sync.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)), where  # the wheel's copy, not this checkout

    with running_dev([str(venv / "bin" / "triplit-sync"), "dev", "--port", "0"], env, tmp_path) as banner:
        url = re.search(r"running at (\S+)", banner).group(1)  # type: ignore[union-attr]
        schema = re.search(r"schema:\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        assert schema.startswith(str(venv)) and Path(schema).is_file()
        tour = next(b for b in BLOCKS if b.name.startswith("quick-tour"))
        (tmp_path / "tour.py").write_text(tour.code.replace(DEV_URL, url))
        run = subprocess.run([str(py), "tour.py"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "['buy milk']" in run.stdout
