"""Splitting outgoing text into CHUNK-sized UTF-8 pieces and joining incoming CHUNK pieces.

The CHUNK message class itself lives in ``messages`` (which uses this module); the assembler only
needs a piece's ``id``, ``index``, ``total`` and ``data``, described by :class:`ChunkPiece`.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Protocol, Tuple

from ..errors import ProtocolError

__all__ = ["utf8_pieces", "ChunkAssembler", "ChunkPiece", "MAX_PENDING", "MAX_BYTES"]

class ChunkPiece(Protocol):
    """What the assembler reads of one CHUNK message."""

    @property
    def id(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def data(self) -> str: ...


#: Unfinished chunked messages held at once, and the bytes their pieces may take together.
MAX_PENDING = 4
MAX_BYTES = 64 * 1024 * 1024


def utf8_pieces(data: bytes, limit: int) -> List[bytes]:
    """Cut UTF-8 ``data`` into pieces of at most ``limit`` bytes, never inside a character."""
    pieces = []
    start, n = 0, len(data)
    while start < n:
        end = min(start + limit, n)
        while end < n and end > start and (data[end] & 0xC0) == 0x80:  # continuation byte
            end -= 1
        if end == start:  # limit smaller than one character: take the whole character
            end = start + 1
            while end < n and (data[end] & 0xC0) == 0x80:
                end += 1
        pieces.append(data[start:end])
        start = end
    return pieces


class ChunkAssembler:
    """Joins incoming CHUNK pieces (in any order) back into the original message text.

    Holds at most ``max_pending`` unfinished messages and ``max_bytes`` of pieces; beyond that
    the oldest unfinished message is dropped (a single message over ``max_bytes`` too) and
    ``add`` raises ProtocolError, so a peer that never finishes cannot fill memory, and the
    caller knows a message was lost. The server never chunks its own messages (PROTOCOL.md
    §2.1), so the bounds only matter against a hostile or broken peer.

        >>> from triplit_sync.wire.frames import chunk_message
        >>> a = ChunkAssembler()
        >>> [a.add(c) for c in chunk_message('{"type":"PING"}', 8, chunk_id="x")]
        [None, '{"type":"PING"}']
    """

    def __init__(self, max_pending: int = MAX_PENDING, max_bytes: int = MAX_BYTES) -> None:
        self._pending: Dict[str, Tuple[int, Dict[int, str]]] = {}
        self._max_pending = max_pending
        self._max_bytes = max_bytes
        self._bytes = 0

    def add(self, chunk: ChunkPiece) -> Optional[str]:
        """Store one piece; return the whole text once every piece of its message is there.
        Raises ProtocolError when a piece contradicts the earlier ones."""
        entry = self._pending.get(chunk.id)
        dropped = 0
        if entry is None:
            if chunk.total == 1 and chunk.index == 0:
                return chunk.data
            while len(self._pending) >= self._max_pending:
                self._drop_oldest()
                dropped += 1
            entry = (chunk.total, {})
            self._pending[chunk.id] = entry
        total, pieces = entry
        if chunk.total != total or not 0 <= chunk.index < total:
            self._drop(chunk.id)
            raise ProtocolError(
                f"CHUNK frame: piece {chunk.index}/{chunk.total} contradicts total {total}"
                f" of chunk id {chunk.id!r}"
            )
        old = pieces.get(chunk.index)
        self._bytes += len(chunk.data) - (len(old) if old is not None else 0)
        pieces[chunk.index] = chunk.data
        if len(pieces) == total:
            self._drop(chunk.id)
            return "".join(pieces[i] for i in range(total))
        while self._bytes > self._max_bytes and self._pending:
            self._drop_oldest()  # possibly this very message: it alone is over the bound
            dropped += 1
        if dropped:
            raise ProtocolError(
                f"CHUNK frame: dropped {dropped} unfinished chunked message(s) to stay within"
                f" {self._max_pending} messages / {self._max_bytes} bytes"
            )
        return None

    @property
    def pending(self) -> int:
        """How many messages are partly received."""
        return len(self._pending)

    def clear(self) -> None:
        self._pending.clear()
        self._bytes = 0

    def _drop(self, chunk_id: str) -> None:
        entry = self._pending.pop(chunk_id, None)
        if entry is not None:
            self._bytes -= sum(len(p) for p in entry[1].values())

    def _drop_oldest(self) -> None:
        self._drop(next(iter(self._pending)))
