"""Values of the HTTP API: entities encoded with the client's schema before they are sent, and
results decoded with it, each included relation with its own collection's codec."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

__all__ = ["HttpValues"]


class HttpValues:
    """The codec of one :class:`~triplit_sync.http.HttpClient` (``schema``: a Schema or ``None``,
    which leaves values as the server sends them)."""

    def __init__(self, schema: Any) -> None:
        self._schema = schema
        self._relations: Dict[str, Dict[str, Any]] = self._read_relations(schema)

    @staticmethod
    def _read_relations(schema: Any) -> Dict[str, Dict[str, Any]]:
        to_json = getattr(schema, "to_json", None)
        if not callable(to_json):
            return {}
        collections = (to_json() or {}).get("collections") or {}
        return {name: dict(c.get("relationships") or {})
                for name, c in collections.items() if isinstance(c, Mapping)}

    def _subquery(self, collection: str, alias: str, inclusion: Any) -> Optional[Mapping[str, Any]]:
        """The query behind an include, as the server resolves it; ``None`` if it cannot be told."""
        if isinstance(inclusion, Mapping) and isinstance(inclusion.get("subquery"), Mapping):
            return inclusion["subquery"]  # type: ignore[no-any-return]
        relations = self._relations.get(collection) or {}
        if inclusion is None or inclusion is True:
            relation = relations.get(alias)
            extension: Mapping[str, Any] = {}
        elif isinstance(inclusion, Mapping) and isinstance(inclusion.get("_extends"), str):
            relation = relations.get(inclusion["_extends"])
            extension = {k: v for k, v in inclusion.items() if k != "_extends"}
        else:
            return None
        if not isinstance(relation, Mapping) or not isinstance(relation.get("query"), Mapping):
            return None
        return {**relation["query"], **extension}

    def decoder(self, query: Mapping[str, Any]) -> Callable[[Any], Any]:
        """A function that turns one serialized result of ``query`` into Python values."""
        schema = self._schema
        if schema is None:
            return lambda doc: doc
        collection = query["collectionName"]
        decode_entity = schema.decode_entity
        includes = query.get("include") or {}
        if not isinstance(includes, Mapping) or not includes:
            return lambda doc: decode_entity(collection, doc) if isinstance(doc, Mapping) else doc
        subs: Dict[str, Optional[Callable[[Any], Any]]] = {}
        for alias, inclusion in includes.items():
            sub = self._subquery(collection, alias, inclusion)
            known = sub is not None and isinstance(sub.get("collectionName"), str)
            subs[alias] = self.decoder(sub) if known else None  # type: ignore[arg-type]

        def decode(doc: Any) -> Any:
            if not isinstance(doc, dict):
                return doc
            # Related entities are decoded with their own collection's codec, never the parent's.
            related = {alias: doc.pop(alias) for alias in subs if alias in doc}
            out = decode_entity(collection, doc)
            for alias, value in related.items():
                dec = subs[alias]
                if dec is None or value is None:
                    out[alias] = value
                elif isinstance(value, list):
                    out[alias] = [dec(v) for v in value]
                else:
                    out[alias] = dec(value)
            return out

        return decode

    def encode(self, collection: str, entity: Mapping[str, Any], partial: bool) -> Any:
        if self._schema is None:
            return entity
        return self._schema.encode_entity(collection, entity, partial=partial)
