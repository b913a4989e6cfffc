"""Helpers for the tests of one client name used by many processes (test_slots*.py)."""

from __future__ import annotations

from typing import Optional, Set

from triplit_sync.testing import TriplitTestServer

# A process that opens the name, writes ``n`` todos ``<prefix>-<i>``, says WROTE with its folder,
# then either waits for the server to acknowledge them (mode "sync": says SYNCED and exits) or
# keeps them unsent (mode "offline": never connects, waits to be killed).
WRITER = """
import sys
from triplit_sync import TriplitClient
url, token, data_dir, name, n, prefix, mode = sys.argv[1:8]
client = TriplitClient(url, token, data_dir=data_dir, name=name, auto_connect=(mode == "sync"))
for i in range(int(n)):
    client.insert("todos", {"id": f"{prefix}-{i}", "text": prefix, "owner": "x", "completed": False, "created_at": "2025-01-01T00:00:00.000Z"})
print("WROTE " + str(client.folder), flush=True)
if mode == "sync":
    client.wait_for_sync(30)
    print("SYNCED", flush=True)
    client.close()
else:
    import signal
    signal.pause()  # until killed
"""

# A process that opens the name (taking in whatever dead processes left) and waits until the
# server has acknowledged every write in its outbox; says SENT with its folder.
DRAINER = """
import sys
from triplit_sync import TriplitClient
url, token, data_dir, name = sys.argv[1:5]
client = TriplitClient(url, token, data_dir=data_dir, name=name)
pending = sum(len(c["sets"]) for e in client._store.pending_changes() for c in e.changes.values())
client.wait_for_sync(30)
print(f"SENT {client.folder} {pending}", flush=True)
client.close()
"""


def server_ids(server: TriplitTestServer, prefix: Optional[str] = None) -> Set[str]:
    """The ids of the todos the server has (those starting with ``prefix``, if given)."""
    status, body = server.post("fetch", {"query": {"collectionName": "todos"}}, token=server.service_token())
    assert status == 200, (status, body)
    rows = body if isinstance(body, list) else body.get("result", body)
    ids = set()
    for row in rows:
        doc = row[1] if isinstance(row, list) else row
        ids.add(doc["id"])
    return {i for i in ids if prefix is None or i.startswith(prefix)}
