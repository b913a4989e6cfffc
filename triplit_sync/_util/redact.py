"""Token redaction for every log line, repr and exception message that could hold a token.

    >>> redact("ws://h?sync-schema=false&token=abc.def")
    'ws://h?sync-schema=false&token=<redacted>'
"""

from __future__ import annotations

import logging
import re
from typing import Any, Optional, Union

__all__ = ["REDACTED", "redact", "excerpt", "RedactingFilter", "install_log_filter"]

REDACTED = "<redacted>"
# A JWT's header is base64url JSON, so it starts with "eyJ" ('{"'); JWE tokens have more segments.
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*)*")
_TOKEN_PARAM_RE = re.compile(r"(?i)([?&;]token=)[^&#\s'\"]*")
_TOKEN_FIELD_RE = re.compile(r"(?i)(\"token\"\s*:\s*\")(?:[^\"\\]|\\.)*")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")


def redact(text: Any, limit: Optional[int] = None) -> str:
    """Replace anything that may be a token (JWTs, ``token=`` URL parameters, ``"token"`` JSON
    fields, bearer credentials) with a placeholder; optionally cut the result to ``limit``
    characters. The cut happens after redaction, so it never leaves half a token visible.
    """
    s = text if isinstance(text, str) else str(text)
    if limit is not None and len(s) > limit + 4096:
        s = s[: limit + 4096]  # tokens are far shorter than the margin
    s = _JWT_RE.sub(REDACTED, s)
    s = _TOKEN_PARAM_RE.sub(r"\1" + REDACTED, s)
    s = _TOKEN_FIELD_RE.sub(r"\1" + REDACTED, s)
    s = _BEARER_RE.sub(r"\1" + REDACTED, s)
    if limit is not None and len(s) > limit:
        s = s[:limit] + f"...[{len(s) - limit} more chars]"
    return s


def excerpt(data: Union[str, bytes, bytearray, memoryview], limit: int = 200) -> str:
    """A short, redacted, printable piece of a frame for log lines and error messages."""
    if not isinstance(data, str):
        data = bytes(data[: limit + 4096]).decode("utf-8", "replace")
    return redact(data, limit)


class RedactingFilter(logging.Filter):
    """Redacts the message of every record passing through the logger it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        record.msg, record.args = redact(message), ()
        return True


def install_log_filter(logger: logging.Logger) -> None:
    """Attach a :class:`RedactingFilter` to ``logger`` (once)."""
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
