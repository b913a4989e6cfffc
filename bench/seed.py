"""The benchmark's data: deterministic todos, seeded over HTTP with the service token.

Every client in every round sees byte-identical server data: the ids, texts and dates come from a
seeded RNG, and the server is cleared and re-seeded before every run that writes.
"""

from __future__ import annotations

import datetime as _dt
import random
from typing import Any, Dict, List

from triplit_sync.testing import TriplitTestServer

#: The `sub` of the user token every client uses; the sample schema's `user` role matches any `sub`
#: and lets it write todos whose `owner` is that sub.
USER_ID = "bench-user"

_WORDS = (
    "buy milk call mom fix bug write docs review pr deploy plan sprint water plants pay rent "
    "book flight clean desk read paper walk dog email team update deps refactor parser ship "
    "release tag build run tests backup disk renew cert order lunch"
).split()
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"
_BASE = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)


def _iso(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def make_todos(n: int, seed: int = 7, prefix: str = "") -> List[Dict[str, Any]]:
    """`n` todos shaped like real ones: 21-char nanoid-like ids, short texts, a third completed."""
    rng = random.Random(seed)
    todos = []
    for i in range(n):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 5)))
        todos.append({
            "id": prefix + "".join(rng.choice(_ALPHABET) for _ in range(21 - len(prefix))),
            "text": f"{words} #{i}",
            "completed": i % 3 == 0,
            "created_at": _iso(_BASE + _dt.timedelta(seconds=37 * i, milliseconds=i % 1000)),
            "owner": USER_ID,
        })
    return todos


def seed(server: TriplitTestServer, n: int) -> List[Dict[str, Any]]:
    """Clear the server and insert the standard `n` todos in one HTTP request; return them."""
    server.reset()
    todos = make_todos(n)
    for start in range(0, n, 25_000):  # keeps each body well under the server's 100 MB limit
        status, body = server.post("bulk-insert?noReturn=true", {"todos": todos[start:start + 25_000]})
        if status != 200:
            raise RuntimeError(f"seeding {n} todos failed: HTTP {status} {str(body)[:300]}")
    status, body = server.post("stats", {})
    count = {row.get("collection"): row.get("numEntities") for row in body} if status == 200 else {}
    if count.get("todos") != n:
        raise RuntimeError(f"seeding {n} todos left {count.get('todos')} on the server")
    return todos


def apply_p4_changes(server: TriplitTestServer, todos: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The "other client" of P4: 100 updates, 10 deletes, 10 inserts in one server transaction.

    Returns what a resumed client must show: {"updated": {id: text}, "deleted": [ids], "inserted": [ids]}.
    """
    updated = {t["id"]: f"edited while away {i}" for i, t in enumerate(todos[100:200])}
    deleted = [t["id"] for t in todos[300:310]]
    fresh = make_todos(10, seed=99, prefix="p4new")
    for t in fresh:
        t["created_at"] = _iso(_dt.datetime.now(_dt.timezone.utc))
    sets = [[i, {"text": text}] for i, text in updated.items()] + [[t["id"], t] for t in fresh]
    changes = {
        "json": {"todos": {"sets": sets, "deletes": deleted}},
        "meta": {"values": {"todos.sets": ["map"], "todos.deletes": ["set"]}},
    }
    status, body = server.post("apply-changes", {"changes": changes})
    if status != 200:
        raise RuntimeError(f"P4 changes failed: HTTP {status} {str(body)[:300]}")
    return {"updated": updated, "deleted": deleted, "inserted": [t["id"] for t in fresh]}
