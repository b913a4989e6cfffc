"""A message to and from its text frames: decoding one frame (with the defences of
``_deepjson.py`` and ``_inbound.py`` applied by the message classes), encoding a message as
compact JSON, and CHUNK framing of messages over the size limit (PROTOCOL.md §2.3).

    >>> encode_message(Ping(client_timestamp=1))
    '{"type":"PING","payload":{"clientTimestamp":1}}'
    >>> decode_message('{"type":"READY","payload":{"clientId":"c1"}}')
    Ready(client_id='c1')
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Type, Union

from .._util.redact import excerpt, redact
from ..errors import ProtocolError
from ._chunks import utf8_pieces
from ._deepjson import parse_frame
from ._envelope import dumps_bytes
from .messages import (
    DEFAULT_CHUNK_SIZE,
    ChangesAck,
    ChangesMessage,
    Chunk,
    Close,
    ConnectQuery,
    DisconnectQuery,
    EntityData,
    ErrorMessage,
    Message,
    Ping,
    Pong,
    Ready,
    SchemaRequest,
    SchemaResponse,
    UnknownMessageType,
    UpdateToken,
)

__all__ = ["chunk_message", "decode_message", "encode_frames", "encode_message"]


_BY_TYPE: Dict[str, Type[Message]] = {
    c.TYPE: c
    for c in (
        Ready,
        SchemaRequest,
        EntityData,
        ChangesAck,
        ErrorMessage,
        Close,
        Pong,
        Chunk,
        ConnectQuery,
        DisconnectQuery,
        ChangesMessage,
        UpdateToken,
        SchemaResponse,
        Ping,
    )
}


def decode_message(frame: Union[str, bytes, bytearray, memoryview]) -> Message:
    """Parse one text frame (``str`` or UTF-8 ``bytes``) into its message object.

    Raises :class:`ProtocolError` naming the frame type and the problem for invalid JSON, a
    missing or unknown ``type`` or a payload of the wrong shape (never a bare KeyError).

        >>> decode_message(b'{"type":"CHANGES_ACK","payload":{"timestamp":[1,0,"server"]}}')
        ChangesAck(timestamp=[1, 0, 'server'])
    """
    if isinstance(frame, (memoryview, bytearray)):
        frame = bytes(frame)
    try:
        obj = parse_frame(frame)  # never recurses without limit (_deepjson.py)
    except (ValueError, TypeError) as e:
        raise ProtocolError(f"frame is not valid JSON ({e}): {excerpt(frame)!r}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"frame is not a JSON object: {excerpt(frame)!r}")
    mtype = obj.get("type")
    if not isinstance(mtype, str):
        raise ProtocolError(f"frame has no message type: {excerpt(frame)!r}")
    cls = _BY_TYPE.get(mtype)
    if cls is None:
        raise UnknownMessageType(f"{redact(mtype, 60)} frame: unknown message type")
    payload = obj.get("payload")
    if payload is None:
        payload = {}
    elif not isinstance(payload, dict):
        raise ProtocolError(f"{mtype} frame: payload is not an object but {type(payload).__name__}")
    try:
        return cls.from_payload(payload)
    except ProtocolError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ProtocolError(f"{mtype} frame: malformed payload ({redact(e, 200)})") from None


def _encode_bytes(msg: Message) -> bytes:
    if not isinstance(msg, Message) or not msg.TYPE:
        raise TypeError(f"expected a protocol message, got {type(msg).__name__}")
    return dumps_bytes({"type": msg.TYPE, "payload": msg.to_payload()})


def encode_message(msg: Message) -> str:
    """The compact JSON text frame of ``msg``. Raises TypeError for values JSON cannot hold.

        >>> encode_message(DisconnectQuery("q1"))
        '{"type":"DISCONNECT_QUERY","payload":{"id":"q1"}}'
    """
    return _encode_bytes(msg).decode("utf-8")


def encode_frames(msg: Message, chunk_size: Optional[int] = DEFAULT_CHUNK_SIZE) -> List[bytes]:
    """The UTF-8 frames that carry ``msg``: one frame, or CHUNK frames when it is over
    ``chunk_size`` bytes (None or 0 disables chunking)."""
    data = _encode_bytes(msg)
    if not chunk_size or len(data) <= chunk_size:
        return [data]
    return [_encode_bytes(c) for c in chunk_message(data, chunk_size)]


def chunk_message(
    text: Union[str, bytes], limit: int = DEFAULT_CHUNK_SIZE, *, chunk_id: Optional[str] = None
) -> List[Chunk]:
    """Split a serialized message into CHUNK messages whose ``data`` is at most ``limit``
    UTF-8 bytes each (never cutting a character). A text that fits gives one chunk.

        >>> [c.data for c in chunk_message('{"type":"PING"}', 8, chunk_id="x")]
        ['{"type":', '"PING"}']
    """
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"chunk limit must be a positive number of bytes, got {limit!r}")
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    pieces = utf8_pieces(data, limit) or [b""]
    cid = chunk_id or os.urandom(6).hex()
    total = len(pieces)
    return [Chunk(cid, i, total, p.decode("utf-8")) for i, p in enumerate(pieces)]
