"""The wire: every message of the Triplit sync protocol as a typed value, their JSON codec (with the
SuperJSON envelope of changes), chunking of large frames, query ids, and the defences against
hostile frames (depth limits, malformed values).

May import :mod:`triplit_sync._util` and :mod:`triplit_sync.errors`; it does no I/O.
"""

from ._chunks import ChunkAssembler

__all__ = ["ChunkAssembler"]
