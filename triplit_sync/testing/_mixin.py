"""A ``unittest`` mixin that gives every test case class the shared real server, and clients
whose storage lives in a temporary folder of the test."""

from __future__ import annotations

import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Optional

from .._util.types import StorageKind
from ._clients import ClientFactory
from .server import SchemaArg, TriplitTestServer, shared_server

if TYPE_CHECKING:
    from ..client import TriplitClient

__all__ = ["TriplitServerMixin"]


class TriplitServerMixin:
    """A ``unittest.TestCase`` mixin: one real server per test process, data cleared before each test.

        class TodoTests(TriplitServerMixin, unittest.TestCase):
            triplit_schema = "schema.json"

            def test_insert(self):
                client = self.triplit_client(token=self.triplit_server.user_token("alice"))
                ...

    :meth:`triplit_client` makes a ``TriplitClient`` of the server (service token by default)
    whose local database is in a temporary folder of this test, removed (and the client
    closed) when the test ends: nothing is shared between tests or left in the user data dir.
    """

    triplit_schema: SchemaArg = None
    triplit_storage: StorageKind = "memory"
    triplit_server: TriplitTestServer

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()  # type: ignore[misc]
        cls.triplit_server = shared_server(cls.triplit_schema, storage=cls.triplit_storage)

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.triplit_server.reset()
        self.__factory: Optional[ClientFactory] = None

    def triplit_client(self, token: Optional[str] = None, **options: Any) -> "TriplitClient":
        """A client of the test server; keyword arguments as for ``TriplitClient``."""
        if self.__factory is None:
            folder = tempfile.mkdtemp(prefix="triplit-test-client-")
            self.__factory = ClientFactory(self.triplit_server, folder)
            # Cleanups run last in, first out: the clients close before their folder goes.
            self.addCleanup(shutil.rmtree, folder, True)  # type: ignore[attr-defined]
            self.addCleanup(self.__factory.close)  # type: ignore[attr-defined]
        return self.__factory(token, **options)
