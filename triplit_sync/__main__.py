"""``python -m triplit_sync`` is the ``triplit-sync`` command."""

from .cli import main

raise SystemExit(main())
