"""Sessions: the session a token starts (identity, roles, expiry), the refresh timer, the session
file a restarted process resumes from, and the JWT claims read from tokens.

May import :mod:`triplit_sync.schema` (default roles), :mod:`triplit_sync._util` and
:mod:`triplit_sync.errors`; knows nothing of the wire, the store or the client.
"""

from ._mint import mint_token
from .state import Session, SessionErrorType, SessionInfo, SessionStore, TokenRefresher

__all__ = ["mint_token", "Session", "SessionErrorType", "SessionInfo", "SessionStore", "TokenRefresher"]
