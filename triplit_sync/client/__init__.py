"""The client facade: ``TriplitClient`` and what it owns — the data API (queries, subscriptions,
writes, transactions), session handling, local storage folders and process slots, fork handling.

The only room that wires the others together: it may import every room below it (sync, http,
session, store, transport, wire, query, schema, _util, errors); only ``testing``, the CLI and the
package root import it.
"""

from ._changes import ChangesStream, RowChanges
from ._pages import ExpandingSubscription, Page, PagedSubscription
from ._status import QueryState, QueryStatus, StatusSubscription
from .facade import TriplitClient

__all__ = [
    "ChangesStream", "ExpandingSubscription", "Page", "PagedSubscription", "QueryState", "QueryStatus",
    "RowChanges", "StatusSubscription", "TriplitClient",
]
