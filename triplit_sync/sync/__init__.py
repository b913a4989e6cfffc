"""The sync engine: the registry of queries and their live subscriptions, the write pipeline from
outbox to CHANGES_ACK, the send-order rule of PROTOCOL.md §13.2, checkpoints and exact resume,
freshness checks, and the dispatcher thread that runs user callbacks.

May import :mod:`triplit_sync.store`, :mod:`triplit_sync.wire`, :mod:`triplit_sync.query`,
:mod:`triplit_sync._util` and :mod:`triplit_sync.errors`. It talks to the server only through the
``send`` callable it is given, and knows nothing of the transport, sessions or the facade.
"""

from ._live import BACKGROUND
from ._outcomes import OutcomeStatus, WriteOutcome
from ._rejected import RejectedWrite
from .engine import UNOWNED, QueryRunner, Subscription, SyncEngine

__all__ = ["BACKGROUND", "UNOWNED", "OutcomeStatus", "QueryRunner", "RejectedWrite", "Subscription", "SyncEngine",
           "WriteOutcome"]
