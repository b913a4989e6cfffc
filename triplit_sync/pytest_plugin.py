"""pytest fixtures for testing against a real Triplit server.

Enable them in your ``conftest.py``::

    pytest_plugins = ["triplit_sync.pytest_plugin"]

    @pytest.fixture(scope="session")
    def triplit_schema():
        return "schema.json"          # or a dict / Schema; None (the default) is schemaless

    def test_todos(triplit_client):   # a client of an emptied server, its storage in tmp_path
        triplit_client.insert("todos", {"text": "hi"})
        ...

``triplit_server`` is the session-wide server itself (data is not cleared); ``triplit`` is the same
server, cleared before the test; ``triplit_client`` is a ``TriplitClient`` of ``triplit`` with the
service token, whose local database lives in the test's ``tmp_path``; ``triplit_client_factory``
makes more (``triplit_client_factory(token=triplit.user_token("alice"), storage="memory")``). No
client made by these fixtures writes to the user data dir, and none outlives its test.

The first run on a machine installs the server's Node packages (about a minute) and shows its
progress in pytest's output.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator

import pytest

from ._util.types import StorageKind
from .client import TriplitClient
from .testing import ClientFactory, TriplitTestServer, shared_server, show_progress_in


def _progress(config: pytest.Config) -> Callable[[str], None]:
    def say(line: str) -> None:
        # Shown at once, also while pytest captures output: the install is what the run waits for.
        # The plugins are looked up per line: at configure time the terminal may not be set up yet.
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            sys.stderr.write(f"triplit_sync: {line}\n")
            return
        suspended = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
        with suspended:
            reporter.write_line(f"triplit_sync: {line}")

    return say


def pytest_configure(config: pytest.Config) -> None:
    # Any test server of the run (not only this plugin's fixtures) shows a first install's progress.
    show_progress_in(_progress(config))


def pytest_unconfigure(config: pytest.Config) -> None:
    show_progress_in(None)


@pytest.fixture(scope="session")
def triplit_schema() -> Any:
    """The schema the test server starts with; override this fixture to choose yours."""
    return None


@pytest.fixture(scope="session")
def triplit_storage() -> StorageKind:
    """``"memory"`` (the default) or ``"sqlite"``; override to choose."""
    return "memory"


@pytest.fixture(scope="session")
def triplit_server(triplit_schema: Any, triplit_storage: StorageKind,
                   pytestconfig: pytest.Config) -> Iterator[TriplitTestServer]:
    """One real Triplit server for the whole test session."""
    yield shared_server(triplit_schema, storage=triplit_storage, progress=_progress(pytestconfig))


@pytest.fixture
def triplit(triplit_server: TriplitTestServer) -> TriplitTestServer:
    """The session's server with every entity deleted before the test."""
    if not triplit_server.running:  # a test may have stopped it
        triplit_server.start()
    triplit_server.reset()
    return triplit_server


@pytest.fixture
def triplit_client_factory(triplit: TriplitTestServer, tmp_path: Any) -> Iterator[ClientFactory]:
    """Makes clients of the emptied server, stored under this test's ``tmp_path``; closed after the test."""
    factory = ClientFactory(triplit, tmp_path / "triplit-clients")
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def triplit_client(triplit_client_factory: ClientFactory) -> TriplitClient:
    """A ``TriplitClient`` of the emptied server with the service token and the server's schema."""
    return triplit_client_factory()
