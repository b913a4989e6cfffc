"""Generated values for schema defaults: ids (nanoid, UUID v4/v7) and the current time.

Ids use the same alphabet and length as the JS ``nanoid`` package the Triplit client uses, so
ids made by Python and by JS clients look alike and sort alike.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from datetime import datetime, timezone

__all__ = ["nanoid", "uuid4", "uuid7", "now_iso", "iso_from_datetime"]

# nanoid's url-safe alphabet (64 symbols), in nanoid's own order.
_ALPHABET = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"


def nanoid(size: int = 21) -> str:
    """A random url-safe id of ``size`` characters (126 random bits at the default 21).

    >>> len(nanoid())
    21
    """
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError(f"nanoid size must be a positive int, got {size!r}")
    alphabet = _ALPHABET
    # 64 symbols: the low 6 bits of each random byte pick one without bias.
    return "".join([alphabet[b & 63] for b in secrets.token_bytes(size)])


def uuid4() -> str:
    """A random UUID v4 as the canonical 36-character string."""
    return str(uuid.uuid4())


def uuid7() -> str:
    """A time-ordered UUID v7 (RFC 9562): 48-bit Unix milliseconds, then random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 are used
    value = (ms & 0xFFFFFFFFFFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFFFFFFFFFFFFFF  # rand_b, 62 bits
    return str(uuid.UUID(int=value))


def iso_from_datetime(value: datetime) -> str:
    """``value`` as JavaScript's ``Date.toISOString()`` prints it: UTC, milliseconds, ``Z``.

    Naive datetimes are taken to be UTC (as PyMongo does); sub-millisecond digits are dropped.

    >>> iso_from_datetime(datetime(2024, 1, 1, 12, 30, 5, 123456))
    '2024-01-01T12:30:05.123Z'
    """
    if value.tzinfo is not None:
        offset = value.utcoffset()
        if offset:
            value = value - offset
        value = value.replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def now_iso() -> str:
    """The current time as a JS-style ISO string (``"2024-01-01T00:00:00.000Z"``)."""
    return iso_from_datetime(datetime.now(timezone.utc))
