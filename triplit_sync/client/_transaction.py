"""A transaction: writes collected and stored together on exit (one outbox segment, merged per
entity by the outbox's own rules), the reads that see them, and the outcome of its writes."""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from .._util.types import Document
from ..errors import EntityNotFoundError, InvalidQueryError
from ..schema import PlainCodec, Schema
from ..store import Segment, merge_entry, overlay
from ..sync import UNOWNED, WriteOutcome
from ._data_more import DataOwner
from ._txreads import Reader, TransactionReads

__all__ = ["Transaction"]

Row = Dict[str, Any]


class Transaction:
    """Writes collected by :meth:`DataAPI.transact`, stored and sent together on exit; reads
    (``fetch``, ``fetch_one``, ``fetch_by_id``) that see them; and, once it has ended, the
    :attr:`outcome` of its writes.

    They are merged per entity by the outbox's own rules (one outbox segment, not yet stored).
    """

    def __init__(self, owner: DataOwner, codec: Union[Schema, PlainCodec], schema: Optional[Schema],
                 reads: Reader) -> None:
        self._owner, self._codec, self._schema = owner, codec, schema
        self._segment = Segment(0, UNOWNED)
        self._done = False
        self._outcome: Optional[WriteOutcome] = None
        self._reads = TransactionReads(reads, self._segment)

    def fetch(self, query: Any) -> List[Row]:
        return self._reads.fetch(query)

    def fetch_one(self, query: Any) -> Optional[Row]:
        return self._reads.fetch_one(query)

    def fetch_by_id(self, collection: str, entity_id: str) -> Optional[Row]:
        return self._reads.fetch_by_id(collection, entity_id)

    fetch.__doc__ = TransactionReads.fetch.__doc__
    fetch_one.__doc__ = TransactionReads.fetch_one.__doc__
    fetch_by_id.__doc__ = TransactionReads.fetch_by_id.__doc__

    @property
    def outcome(self) -> WriteOutcome:
        """What became of this transaction's writes (:class:`WriteOutcome`): wait for it, or
        be called back, without waiting for anyone else's writes. Available once the
        ``with`` block has ended; a transaction that wrote nothing is ``"synced"`` at once, one
        whose block raised ``"dropped"``.

            with client.transact() as tx:
                tx.insert("todos", {"text": "milk"})
            tx.outcome.wait(timeout=10)
        """
        if self._outcome is None:
            raise InvalidQueryError("the outcome of a transaction is known once its with block has ended")
        return self._outcome

    def _visible(self, collection: str, entity_id: str) -> Optional[Document]:
        base = self._owner.store.get(collection, entity_id)
        return overlay(collection, entity_id, base, [self._segment])

    def _add(self, collection: str, entity_id: str, delete: bool, patch: Optional[Document]) -> None:
        if self._done:
            raise InvalidQueryError("this transaction has ended")
        store = self._owner.store
        self._segment.put(collection, entity_id, merge_entry(
            self._segment.entry(collection, entity_id), delete, patch,
            lambda: store.get(collection, entity_id) is not None))

    def insert(self, collection: str, entity: Mapping[str, Any]) -> Row:
        codec = self._codec
        doc = codec.encode_entity(collection, entity)
        self._add(collection, doc["id"], False, doc)
        return codec.decode_entity(collection, doc)

    def update(self, collection: str, entity_id: str,
               changes: Union[Mapping[str, Any], Callable[[Dict[str, Any]], Any]]) -> None:
        if not isinstance(entity_id, str):
            raise TypeError(f"entity_id must be a string, not {type(entity_id).__name__}")
        codec = self._codec
        current = self._visible(collection, entity_id)
        if callable(changes):
            if current is None:
                raise EntityNotFoundError(f"no entity {entity_id!r} in collection {collection!r} to update")
            before = codec.decode_entity(collection, current)
            after = copy.deepcopy(before)
            returned = changes(after)
            if isinstance(returned, dict):
                after = returned
            patch = _diff(before, after)
            if "id" in patch:
                raise InvalidQueryError(f"cannot change the id of {collection!r} entity {entity_id!r}")
            if not patch:
                return
        elif isinstance(changes, Mapping):
            patch = dict(changes)
            if patch.get("id", entity_id) != entity_id:
                raise InvalidQueryError(f"cannot change the id of {collection!r} entity {entity_id!r}")
            patch.pop("id", None)
        else:
            raise TypeError(f"changes must be a dict or a function, not {type(changes).__name__}")
        encoded = codec.encode_entity(collection, patch, partial=True, current=current)
        self._add(collection, entity_id, False, encoded)

    def delete(self, collection: str, entity_id: str) -> None:
        if not isinstance(entity_id, str):
            raise TypeError(f"entity_id must be a string, not {type(entity_id).__name__}")
        if self._schema is not None and not self._schema.has_collection(collection):
            raise InvalidQueryError(f"unknown collection {collection!r}")
        self._add(collection, entity_id, True, None)

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._done = True
        owner = self._owner
        if exc_type is None and self._segment.changes:
            self._outcome = owner.engine.write(self._segment.changes, track=True, timeout=owner.timeout)
        else:  # nothing written, or nothing kept: the block raised
            self._outcome = owner.engine.own.settled_outcome(owner.timeout, "synced" if exc_type is None else "dropped")


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> Dict[str, Any]:
    """The patch that turns ``before`` into ``after`` (records diffed key by key; removed -> None)."""
    patch: Dict[str, Any] = {}
    for key, value in after.items():
        old = before.get(key, _MISSING)
        if old is _MISSING or old != value:
            if isinstance(old, dict) and isinstance(value, dict):
                patch[key] = _diff(old, value)
            else:
                patch[key] = value
    for key in before:
        if key not in after:
            patch[key] = None
    return patch


_MISSING = object()
