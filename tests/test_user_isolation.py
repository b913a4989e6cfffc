"""The pytest plugin and the unittest mixin give clients whose storage is the test's own: a second
test never sees the first one's local rows, and nothing is written to the user data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

pytestmark = pytest.mark.server  # the inner runs start the real server in a child process

REPO = Path(__file__).resolve().parent.parent

CONFTEST = '''
import pytest
from triplit_sync import DEMO_SCHEMA

pytest_plugins = ["triplit_sync.pytest_plugin"]


@pytest.fixture(scope="session")
def triplit_schema():
    return DEMO_SCHEMA
'''

TESTS = '''
ALL = {"collectionName": "todos"}


def test_a_writes(triplit_client):
    triplit_client.insert("todos", {"text": "from a", "owner": "x"})
    triplit_client.wait_for_sync(timeout=10)
    assert [t["text"] for t in triplit_client.fetch(ALL, policy="local-only")] == ["from a"]


def test_b_sees_nothing_of_a(triplit_client):
    # Before the fixture, a client of the same server shared a_writes' sqlite file in the user
    # data dir: local-only showed "from a" although the server had been emptied.
    assert triplit_client.fetch(ALL, policy="local-only") == []
    assert triplit_client.fetch(ALL) == []
    assert triplit_client.fetch(ALL, policy="remote-first") == []


def test_c_memory_and_a_user(triplit, triplit_client_factory):
    client = triplit_client_factory(token=triplit.user_token("alice"), storage="memory")
    client.insert("todos", {"text": "mine", "owner": "alice"})
    client.wait_for_sync(timeout=10)
    assert [t["text"] for t in client.fetch(ALL)] == ["mine"]


def test_d_again_empty(triplit_client_factory):
    first, second = triplit_client_factory(), triplit_client_factory()   # two at once: two names
    assert first.fetch(ALL, policy="local-only") == second.fetch(ALL, policy="local-only") == []
'''

UNITTESTS = '''
import unittest
from triplit_sync import DEMO_SCHEMA
from triplit_sync.testing import TriplitServerMixin

ALL = {"collectionName": "todos"}


class Isolation(TriplitServerMixin, unittest.TestCase):
    triplit_schema = DEMO_SCHEMA

    def test_a_writes(self):
        client = self.triplit_client()
        client.insert("todos", {"text": "from a", "owner": "x"})
        client.wait_for_sync(timeout=10)
        self.assertEqual(len(client.fetch(ALL, policy="local-only")), 1)

    def test_b_sees_nothing_of_a(self):
        client = self.triplit_client(token=self.triplit_server.user_token("bob"))
        self.assertEqual(client.fetch(ALL, policy="local-only"), [])
        self.assertEqual(client.fetch(ALL), [])


if __name__ == "__main__":
    unittest.main()
'''


def _env(tmp_path: Path) -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), XDG_DATA_HOME=str(tmp_path / "user-data"))
    env.pop("PYTEST_ADDOPTS", None)  # the outer run's --junitxml is not the inner run's
    return env


def _user_data_left(tmp_path: Path) -> list:
    root = tmp_path / "user-data"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_pytest_plugin_clients_are_isolated_between_tests(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_isolation.py").write_text(TESTS)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
                          cwd=project, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    assert "4 passed" in proc.stdout, proc.stdout
    assert _user_data_left(tmp_path) == []


def test_unittest_mixin_clients_are_isolated_between_tests(tmp_path: Path) -> None:
    (tmp_path / "test_isolation.py").write_text(UNITTESTS)
    proc = subprocess.run([sys.executable, "test_isolation.py", "-v"], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    assert "Ran 2 tests" in proc.stderr and "OK" in proc.stderr, proc.stderr
    assert _user_data_left(tmp_path) == []
