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
(fixtures ``triplit_server``, ``triplit``, ``triplit_client`` and ``triplit_client_factory``);
for unittest, mix :class:`TriplitServerMixin`
into your ``TestCase``.

The server helpers import only :mod:`triplit_sync._util`, :mod:`triplit_sync.errors` and
:mod:`triplit_sync.session` (token minting); the client is imported only when a test asks for a
client (``TriplitServerMixin.triplit_client()``, ``_clients.py``). The pytest plugin and the CLI
build on this room.
"""

from ._clients import ClientFactory
from ._install import TestServerError, ensure_js_client_installed, ensure_server_installed, show_progress_in
from ._mixin import TriplitServerMixin
from ._tokens import (
    DEFAULT_SECRET,
    KeyPair,
    auth0_claims,
    clerk_claims,
    generate_key_pair,
    mint_token,
    supabase_claims,
)
from .server import TriplitTestServer, shared_server

__all__ = [
    "ClientFactory",
    "DEFAULT_SECRET",
    "KeyPair",
    "TestServerError",
    "TriplitServerMixin",
    "TriplitTestServer",
    "auth0_claims",
    "clerk_claims",
    "ensure_js_client_installed",
    "ensure_server_installed",
    "generate_key_pair",
    "mint_token",
    "shared_server",
    "show_progress_in",
    "supabase_claims",
]
