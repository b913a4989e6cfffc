"""Reads inside a transaction: the local database with the transaction's own writes laid over
it (they are not in the outbox yet), so ``tx.fetch`` sees what ``tx.insert`` just wrote.

:class:`~triplit_sync.client.data.Transaction` owns one :class:`TransactionReads` and offers its
methods.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, Set

from .._util.types import Document
from ..store import LocalStore, Segment, overlay

__all__ = ["Reader", "TransactionReads", "TxSource"]

Row = Dict[str, Any]


class TxSource:
    """What the query evaluator reads: the store (cache + outbox) with one more layer on top."""

    def __init__(self, store: LocalStore, segment: Segment) -> None:
        self._store = store
        self._segment = segment

    def get(self, collection: str, entity_id: str) -> Optional[Document]:
        return overlay(collection, entity_id, self._store.get(collection, entity_id), [self._segment])

    def scan(self, collection: str) -> List[Document]:
        docs = self._store.scan(collection)
        c = self._segment.changes.get(collection)
        if c is None:
            return docs
        touched: Set[str] = set(c["sets"]) | set(c["deletes"])
        out = [doc for doc in docs if doc.get("id") not in touched]
        for eid in touched:
            doc = self.get(collection, eid)
            if doc is not None:
                out.append(doc)
        return out


class Reader(Protocol):
    """What transaction reads need of the data API."""

    def check_open(self) -> None: ...
    @property
    def store(self) -> LocalStore: ...
    def query_json(self, query: Any) -> Dict[str, Any]: ...
    def decode(self, query: Dict[str, Any], rows: List[Document]) -> List[Row]: ...
    def run_over(self, query: Dict[str, Any], source: Any) -> List[Document]: ...


class TransactionReads:
    """``fetch``, ``fetch_one`` and ``fetch_by_id`` for a transaction (local only)."""

    def __init__(self, data: Reader, segment: Segment) -> None:
        self._data = data
        self._segment = segment

    def fetch(self, query: Any) -> List[Row]:
        """The query's results in the local database as this transaction leaves it so far: its
        own inserts, updates and deletes included. Never waits for the server (a transaction
        is local until it ends; JS ``tx.fetch`` reads the same way).

            with client.transact() as tx:
                tx.insert("todos", {"id": "t1", "text": "milk"})
                assert [t["id"] for t in tx.fetch(client.query("todos"))] == ["t1"]
        """
        data = self._data
        data.check_open()
        q = data.query_json(query)
        return data.decode(q, data.run_over(q, TxSource(data.store, self._segment)))

    def fetch_one(self, query: Any) -> Optional[Row]:
        """The first result of :meth:`fetch`, or ``None``."""
        q = self._data.query_json(query)
        q["limit"] = 1
        rows = self.fetch(q)
        return rows[0] if rows else None

    def fetch_by_id(self, collection: str, entity_id: str) -> Optional[Row]:
        """The entity as this transaction sees it, or ``None`` (deleted in it, or absent).

            with client.transact() as tx:
                tx.update("todos", "t1", {"completed": True})
                assert tx.fetch_by_id("todos", "t1")["completed"] is True
        """
        if not isinstance(entity_id, str):
            raise TypeError(f"entity_id must be a string, not {type(entity_id).__name__}")
        return self.fetch_one({"collectionName": collection, "where": [["id", "=", entity_id]]})
