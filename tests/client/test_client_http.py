"""client.http: the HTTP client that follows the session's token."""

from __future__ import annotations

import threading
import time

import pytest

from triplit_sync import NoActiveSessionError, TriplitClient
from triplit_sync.testing import TriplitTestServer


def test_client_http_follows_the_session_token(triplit: TriplitTestServer) -> None:
    short = triplit.user_token("alice", expires_in=1.5)
    expires = time.time() + 1.5
    with TriplitClient(triplit.url, short, storage="memory", auto_connect=False) as client:
        client.http.insert("todos", {"text": "mine", "owner": "alice"})
        client.update_session_token(triplit.user_token("alice", expires_in=3600))
        # The first token must really have expired for this to tell the two tokens apart:
        # time passing is the behaviour under test, not a synchronization.
        threading.Event().wait(max(0.0, expires - time.time() + 0.2))
        rows = client.http.fetch(client.query("todos"))
        assert [r["text"] for r in rows] == ["mine"]
        client.end_session()
        with pytest.raises(NoActiveSessionError):
            client.http.fetch(client.query("todos"))
