"""A unittest suite for examples/flask_app.py against a real Triplit server (Node.js needed):

    python -m unittest examples/test_app.py -v

``TriplitServerMixin`` starts one server per process and empties it before each test;
``self.triplit_client()`` gives clients whose storage is in the test's own temporary folder.
"""

from __future__ import annotations

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flask_app import create_app  # noqa: E402

from triplit_sync import DEMO_SCHEMA  # noqa: E402
from triplit_sync.testing import TriplitServerMixin  # noqa: E402


class FlaskAppTests(TriplitServerMixin, unittest.TestCase):
    triplit_schema = DEMO_SCHEMA

    def setUp(self) -> None:
        super().setUp()
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        app = create_app(self.triplit_server.url, self.triplit_server.service_token(), data_dir=folder.name)
        self.addCleanup(app.extensions["triplit"].close)
        self.addCleanup(app.extensions["triplit_http"].close)
        self.http = app.test_client()
        self.alice = {"Authorization": f"Bearer {self.triplit_server.user_token('alice')}"}

    def test_a_user_adds_and_lists_their_todos(self) -> None:
        created = self.http.post("/todos", json={"text": "buy milk", "owner": "alice"}, headers=self.alice)
        self.assertEqual(created.status_code, 201, created.json)
        listed = self.http.get("/todos", headers=self.alice)
        self.assertEqual([t["text"] for t in listed.json], ["buy milk"])

    def test_the_server_refuses_a_todo_for_someone_else(self) -> None:
        refused = self.http.post("/todos", json={"text": "not mine", "owner": "bob"}, headers=self.alice)
        self.assertEqual(refused.status_code, 403, refused.json)
        self.assertEqual(refused.json["error"], "WritePermissionError")

    def test_no_token_is_a_401(self) -> None:
        self.assertEqual(self.http.get("/todos").status_code, 401)

    def test_the_apps_own_client_sees_what_users_wrote(self) -> None:
        self.http.post("/todos", json={"text": "a", "owner": "alice"}, headers=self.alice)
        self.assertEqual(self.http.post("/admin/announce", json={"text": "hello"}).status_code, 201)
        # The server has both; a client of this test (its own storage) sees them too.
        client = self.triplit_client()
        texts = sorted(t["text"] for t in client.fetch(client.query("todos"), policy="remote-first"))
        self.assertEqual(texts, ["a", "hello"])
        self.assertEqual(self.http.get("/admin/count").json, {"open": 2})


if __name__ == "__main__":
    unittest.main()
