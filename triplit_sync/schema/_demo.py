"""The demo schema ``triplit-sync dev`` starts with, by name, so that the README's quick tour
works as written: ``TriplitClient(url, token=token, schema=DEMO_SCHEMA)``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_SCHEMA"]

#: Path (a ``str``) of the demo schema file shipped in the package: ``todos`` (text, completed,
#: created_at, owner; users write only their own) and ``messages``, with the roles anonymous /
#: user (``sub``) / admin. ``triplit-sync dev`` prints it too.
DEMO_SCHEMA = str(Path(__file__).resolve().parent.parent / "server" / "demo-schema.json")
