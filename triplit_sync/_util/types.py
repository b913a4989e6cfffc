"""Type aliases shared by the layers (no logic here).

A *document* is an entity in its encoded (wire) form: dates are ISO-8601 strings and set
attributes are ``{item: true|false}`` maps. *Changes* are what ENTITY_DATA, CHANGES and the
outbox carry, in memory:

    {collection: {"sets": {entity_id: document_or_patch}, "deletes": {entity_id, ...}}}

A set whose document contains ``"id"`` is an insert (or upsert); one without ``"id"`` is a
partial update. A *timestamp* is the server's hybrid logical clock triple
``[milliseconds, counter, "server"]``; lists compare in the right order.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Set, TypedDict, Union

Document = Dict[str, Any]
Timestamp = List[Union[int, str]]
QueryJSON = Dict[str, Any]


class CollectionChanges(TypedDict):
    sets: Dict[str, Document]
    deletes: Set[str]


Changes = Dict[str, CollectionChanges]

#: Where a client keeps its cache and outbox (and a test server its data).
StorageKind = Literal["sqlite", "memory"]
