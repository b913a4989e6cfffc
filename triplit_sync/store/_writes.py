"""The record of one store operation's changes, handed to a store's persistence in one piece."""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

from .._util.types import Document, Timestamp

__all__ = ["Writes"]


class Writes:
    """Every change one store operation makes, handed to :meth:`LocalStore._persist` in one piece.

    Order of application: ``clear``, entity deletes, entity puts, outbox segment deletes, outbox
    rows, outbox flags, query ids (drops, removals, additions), metadata.
    """

    __slots__ = (
        "clear", "timestamp", "entity_deletes", "entity_puts", "segment_deletes",
        "outbox_rows", "segment_flags", "query_drops", "query_removed", "query_added", "meta",
    )

    def __init__(self) -> None:
        self.clear = False
        self.timestamp: Optional[Timestamp] = None
        #: (collection, ids) pairs
        self.entity_deletes: List[Tuple[str, Set[str]]] = []
        #: (collection, {id: document}) pairs, all stamped with ``timestamp``
        self.entity_puts: List[Tuple[str, Dict[str, Document]]] = []
        self.segment_deletes: List[int] = []
        #: (segment, owner, inflight, collection, id, pending set or None, pending delete, unit);
        #: a row with neither a set nor a delete removes the stored row
        self.outbox_rows: List[Tuple[int, str, bool, str, str, Optional[Document], bool, int]] = []
        #: (segment, inflight)
        self.segment_flags: List[Tuple[int, bool]] = []
        self.query_drops: List[str] = []
        #: (query id, collection, entity id)
        self.query_removed: List[Tuple[str, str, str]] = []
        self.query_added: List[Tuple[str, str, str]] = []
        #: (key, JSON bytes)
        self.meta: List[Tuple[str, bytes]] = []
