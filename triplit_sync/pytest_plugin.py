"""pytest fixtures for testing against a real Triplit server.

Enable them in your ``conftest.py``::

    pytest_plugins = ["triplit_sync.pytest_plugin"]

    @pytest.fixture(scope="session")
    def triplit_schema():
        return "schema.json"          # or a dict / Schema; None (the default) is schemaless

    def test_todos(triplit):          # a server with no data in it
        token = triplit.user_token("alice")
        ...

``triplit_server`` is the session-wide server itself (data is not cleared); ``triplit`` is the same
server, cleared before the test.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from ._util.types import StorageKind
from .testing import TriplitTestServer, shared_server


@pytest.fixture(scope="session")
def triplit_schema() -> Any:
    """The schema the test server starts with; override this fixture to choose yours."""
    return None


@pytest.fixture(scope="session")
def triplit_storage() -> StorageKind:
    """``"memory"`` (the default) or ``"sqlite"``; override to choose."""
    return "memory"


@pytest.fixture(scope="session")
def triplit_server(triplit_schema: Any, triplit_storage: StorageKind) -> Iterator[TriplitTestServer]:
    """One real Triplit server for the whole test session."""
    yield shared_server(triplit_schema, storage=triplit_storage)


@pytest.fixture
def triplit(triplit_server: TriplitTestServer) -> TriplitTestServer:
    """The session's server with every entity deleted before the test."""
    if not triplit_server.running:  # a test may have stopped it
        triplit_server.start()
    triplit_server.reset()
    return triplit_server
