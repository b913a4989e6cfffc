"""A ``unittest`` mixin that gives every test case class the shared real server."""

from __future__ import annotations

from .._util.types import StorageKind
from .server import SchemaArg, TriplitTestServer, shared_server

__all__ = ["TriplitServerMixin"]


class TriplitServerMixin:
    """A ``unittest.TestCase`` mixin: one real server per test process, data cleared before each test.

        class TodoTests(TriplitServerMixin, unittest.TestCase):
            triplit_schema = "schema.json"

            def test_insert(self):
                token = self.triplit_server.user_token("alice")
                ...
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
