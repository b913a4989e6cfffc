"""Clients for tests: connected to a test server, their storage in a folder the test owns (or in
memory), so that one test never sees another's local data and nothing lands in the user data dir."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Union

from .server import TriplitTestServer

if TYPE_CHECKING:
    from ..client import TriplitClient

__all__ = ["ClientFactory"]


class ClientFactory:
    """Makes ``TriplitClient``\\ s for ``server``; each keeps its local database under ``folder``.

    ``factory()`` connects with the service token (admin, bypasses permissions);
    ``factory(token=server.user_token("alice"))`` as a user; any other keyword goes to
    ``TriplitClient`` (``storage="memory"``, ``name=...``). The server's schema is the default
    ``schema``. :meth:`close` closes every client made.
    """

    __test__ = False

    def __init__(self, server: TriplitTestServer, folder: Union[str, "os.PathLike[str]"]) -> None:
        self.server = server
        self.folder = Path(folder)
        self._clients: List["TriplitClient"] = []

    def __call__(self, token: Optional[str] = None, **options: Any) -> "TriplitClient":
        from ..client import TriplitClient

        options.setdefault("schema", self.server.schema_path)
        options.setdefault("data_dir", self.folder)
        options.setdefault("name", f"client-{len(self._clients)}")
        client = TriplitClient(self.server.url, token=token or self.server.service_token(), **options)
        self._clients.append(client)
        return client

    def close(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            client.close()
