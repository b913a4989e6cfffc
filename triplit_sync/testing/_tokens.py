"""Token minting for the test server; the implementation lives in :mod:`triplit_sync.session`
because apps that sign their own tokens need it in production too."""

from ..session._mint import DEFAULT_SECRET, mint_token

__all__ = ["DEFAULT_SECRET", "mint_token"]
