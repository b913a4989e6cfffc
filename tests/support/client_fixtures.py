"""pytest fixtures for the TriplitClient tests; test modules load them with
``pytest_plugins = ["tests.support.client_fixtures"]`` (tests/conftest.py is shared and stays small)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

from triplit_sync import TriplitClient
from triplit_sync.testing import TriplitTestServer, shared_server

from .rich_schema import rich_schema


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TriplitClient]]:
    """``make_client(server, token, **kwargs)``: a TriplitClient closed after the test.

    Memory storage unless ``storage="sqlite"`` (then in the test's tmp_path unless ``data_dir``).
    """
    made: List[TriplitClient] = []

    def make(server: TriplitTestServer, token: Optional[str] = None, **kwargs: Any) -> TriplitClient:
        kwargs.setdefault("storage", "memory")
        if kwargs["storage"] == "sqlite":
            kwargs.setdefault("data_dir", tmp_path / "clients")
        client = TriplitClient(server.url, token=token, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def rich() -> TriplitTestServer:
    """A shared server with tests/support/rich_schema.py's schema, emptied before the test."""
    server = shared_server(rich_schema().to_json())
    if not server.running:
        server.start()
    server.reset()
    return server
