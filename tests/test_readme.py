"""Every code block of README.md runs, against `triplit-sync dev` (its demo schema and tokens).

A newcomer copies the README: so the test runs what it shows, on a free port instead of 6543 and
with the user data dir in a temporary folder. How each block runs is said by the marker line
before it (README, "README blocks"):

- ``<!-- runs: standalone -->``: as it is, in a fresh interpreter;
- ``<!-- runs: pytest -->`` / ``<!-- runs: unittest -->``: as test files (split at ``# name.py``);
- ``<!-- runs: banner -->``: compared with the banner `triplit-sync dev` prints;
- no marker: a Python snippet, run after PRELUDE (the names the snippets assume);
- ``<!-- fragment: NAME (why) -->`` or the CI's ``<!-- test-command -->``: skipped by name, and
  only the names in FRAGMENTS may be skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from tests.support.dev import running_dev

pytestmark = pytest.mark.server  # `triplit-sync dev` and the blocks run Node in child processes

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DEV_URL = "http://127.0.0.1:6543"

#: The blocks that may be skipped, each for the reason its marker gives.
FRAGMENTS = {"install-and-dev", "test-command", "marker-runs", "celery-recipe", "django-recipe", "bench",
             "faults"}

PRELUDE = '''
import logging
from triplit_sync import DEMO_SCHEMA, HttpClient, TriplitClient, mint_token

SERVER_URL = TRIPLIT_URL = {url!r}
SCHEMA = DEMO_SCHEMA
token = {user_token!r}
SERVICE_TOKEN = service_token = {service_token!r}
new_token = mint_token({secret!r}, sub="dev-user", expires_in=3600)
client = TriplitClient(SERVER_URL, token=token, schema=SCHEMA, name="readme-prelude")
q = client.query("todos")
http = HttpClient(SERVER_URL, service_token, schema=SCHEMA)
todo_id = http.insert("todos", {{"text": "from the prelude", "owner": "dev-user"}})["id"]
many_todos = [{{"text": f"todo {{i}}", "owner": "dev-user"}} for i in range(3)]
log = logging.getLogger("readme")


class my_auth:
    @staticmethod
    def get_fresh_token():
        return mint_token({secret!r}, sub="dev-user", expires_in=3600)
'''

_MARKER = re.compile(r"<!--\s*(runs|fragment):\s*([\w-]+)(.*?)-->|<!--\s*(test-command)\s*-->")


@dataclass
class Block:
    name: str
    line: int
    lang: str
    code: str
    how: str  # "standalone", "pytest", "unittest", "banner", "snippet" or "fragment"


def readme_blocks() -> List[Block]:
    lines = README.read_text().splitlines()
    blocks: List[Block] = []
    section = "top"
    counts: Dict[str, int] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            section = re.sub(r"[^a-z0-9]+", "-", line.lstrip("#").strip().lower()).strip("-")
        if line.startswith("```"):
            lang = line[3:].strip()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            code = "\n".join(lines[i + 1:end]) + "\n"
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = _MARKER.search(before)
            if marker and marker.group(4):
                how, name = "fragment", "test-command"
            elif marker and marker.group(1) == "fragment":
                how, name = "fragment", marker.group(2)
            else:
                counts[section] = counts.get(section, 0) + 1
                how = marker.group(2) if marker else "snippet"
                name = f"{section}-{counts[section]}"
            blocks.append(Block(name, i + 1, lang, code, how))
            i = end
        i += 1
    return blocks


BLOCKS = readme_blocks()


def test_the_readme_marks_what_it_skips() -> None:
    assert {b.name for b in BLOCKS if b.how == "fragment"} == FRAGMENTS
    for block in BLOCKS:
        assert block.how in ("standalone", "pytest", "unittest", "banner", "snippet", "fragment"), block
        if block.how == "snippet":
            assert block.lang == "python", (f"README line {block.line}: a {block.lang or 'plain'} block needs a "
                                            f"marker (runs: ... or fragment: NAME (why))")


# --------------------------------------------------------------------------- the dev server


@dataclass
class Dev:
    url: str
    banner: str
    secret: str
    service_token: str
    anon_token: str
    user_token: str


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with running_dev([sys.executable, "-m", "triplit_sync", "dev", "--port", "0"], env, REPO) as text:
        banner = text[text.index("Triplit server running"):]
        after = banner.splitlines()

        def token_after(title: str) -> str:
            return after[next(i for i, l in enumerate(after) if l.startswith(title)) + 1].strip()

        yield Dev(url=re.search(r"running at (\S+)", banner).group(1),  # type: ignore[union-attr]
                  banner=banner, secret=re.search(r"secret:\s+(\S+)", banner).group(1),  # type: ignore[union-attr]
                  service_token=token_after("Service token"), anon_token=token_after("Anonymous token"),
                  user_token=token_after("User token"))


def _env(tmp_path: Path) -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), XDG_DATA_HOME=str(tmp_path / "user-data"))
    env.pop("PYTEST_ADDOPTS", None)  # CI's --junitxml must not be overwritten by a block's pytest run
    return env


def _run(argv: List[str], tmp_path: Path, block: Block) -> str:
    proc = subprocess.run(argv, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, (f"README line {block.line} ({block.name}) failed:\n{block.code}\n"
                                  f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}")
    return proc.stdout


def _on_port(code: str, dev: Dev) -> str:
    return code.replace(DEV_URL, dev.url)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_readme_block_runs(block: Block, dev: Dev, tmp_path: Path) -> None:
    if block.how == "fragment":
        pytest.skip(f"README line {block.line}: fragment {block.name!r}, marked so in README.md")
    code = _on_port(block.code, dev)
    if block.how == "banner":
        _check_banner(code, dev)
    elif block.how == "standalone":
        (tmp_path / "block.py").write_text(code)
        _run([sys.executable, "block.py"], tmp_path, block)
    elif block.how == "snippet":
        prelude = PRELUDE.format(url=dev.url, secret=dev.secret, user_token=dev.user_token,
                                 service_token=dev.service_token)
        (tmp_path / "block.py").write_text(prelude + "\n# --- README block\n" + code)
        _run([sys.executable, "block.py"], tmp_path, block)
    elif block.how == "pytest":
        files = _split_files(code)
        assert "conftest.py" in files, block
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path, block)
        assert re.search(r"\b\d+ passed\b", out) and "failed" not in out, out
    elif block.how == "unittest":
        (tmp_path / "test_readme_unittest.py").write_text(code)
        _run([sys.executable, "test_readme_unittest.py"], tmp_path, block)
    else:  # pragma: no cover
        pytest.fail(f"unknown block kind {block.how}")


def test_the_quick_tour_runs_verbatim_and_shows_its_todo(dev: Dev, tmp_path: Path) -> None:
    tour = next(b for b in BLOCKS if b.name.startswith("quick-tour"))
    assert tour.how == "standalone" and DEV_URL in tour.code
    (tmp_path / "tour.py").write_text(_on_port(tour.code, dev))
    out = _run([sys.executable, "tour.py"], tmp_path, tour)
    assert "['buy milk']" in out, out
    # The default storage is the user data dir: here the temporary one, never the real one.
    assert any((tmp_path / "user-data" / "triplit_sync").iterdir())


def _split_files(code: str) -> Dict[str, str]:
    files: Dict[str, str] = {}
    current: Optional[str] = None
    for line in code.splitlines(keepends=True):
        match = re.match(r"# (\w+\.py)\s*$", line)
        if match:
            current = match.group(1)
            files[current] = ""
        elif current is not None:
            files[current] += line
    return files


def _check_banner(shown: str, dev: Dev) -> None:
    real = dev.banner.splitlines()
    for i, line in enumerate(shown.rstrip("\n").splitlines()):
        pattern = ".*".join(re.escape(part) for part in line.split("..."))
        assert i < len(real) and re.fullmatch(pattern, real[i]), \
            f"README banner line {i + 1} {line!r} does not match {real[i] if i < len(real) else None!r}"


def test_the_banner_names_a_schema_file_and_the_secret(dev: Dev) -> None:
    schema_path = re.search(r"schema:\s+(\S+)", dev.banner).group(1)  # type: ignore[union-attr]
    assert Path(schema_path).is_file()
    from triplit_sync import DEMO_SCHEMA, mint_token
    assert schema_path == DEMO_SCHEMA
    assert mint_token(dev.secret, sub="dev-user") == dev.user_token


