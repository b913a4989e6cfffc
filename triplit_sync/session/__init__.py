"""Sessions: the session a token starts (identity, roles, expiry), the timers on its token (refresh,
expiry probe), the session file a restarted process resumes from, and the JWT claims read from
tokens; :class:`SessionManager` holds them together for the client.

May import :mod:`triplit_sync.schema` (default roles), :mod:`triplit_sync._util` and
:mod:`triplit_sync.errors`; knows nothing of the wire, the store or the client.
"""

from ._file import SessionStore
from ._mint import DEFAULT_SECRET, mint_token
from ._refresh import ExpiryWatch, TokenRefresher
from .state import Session, SessionErrorType, SessionInfo

__all__ = ["DEFAULT_SECRET", "ExpiryWatch", "Session", "SessionErrorType", "SessionInfo", "SessionStore",
           "TokenRefresher", "mint_token"]
