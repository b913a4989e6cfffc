"""Test helpers for apps that use Triplit: a real ``@triplit/server`` on 127.0.0.1
(``TriplitTestServer``, ``shared_server``), the Node install it needs, token minting, and a
unittest mixin.

The server is the official ``@triplit/server`` (the exact version pinned in
``triplit_sync/server/package.json``), run by Node.js on 127.0.0.1. Its Node dependencies are
installed on first use with ``npm ci`` into a per-version folder under the user cache dir and
reused afterwards.

    from triplit_sync.testing import TriplitTestServer

    with TriplitTestServer(schema="schema.json") as server:
        token = server.user_token("alice")
        ...  # point your client at server.url

For pytest, add ``pytest_plugins = ["triplit_sync.pytest_plugin"]`` to your ``conftest.py``
(fixtures ``triplit_server`` and ``triplit``); for unittest, mix :class:`TriplitServerMixin`
into your ``TestCase``.

Imports only :mod:`triplit_sync._util` and :mod:`triplit_sync.errors`: the server helpers do not
need the client. The pytest plugin and the CLI build on this room.
"""

from ._install import TestServerError, ensure_server_installed
from ._mixin import TriplitServerMixin
from ._tokens import DEFAULT_SECRET, mint_token
from .server import TriplitTestServer, shared_server

__all__ = [
    "DEFAULT_SECRET",
    "TestServerError",
    "TriplitServerMixin",
    "TriplitTestServer",
    "ensure_server_installed",
    "mint_token",
    "shared_server",
]
