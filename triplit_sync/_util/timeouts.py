"""The client-level default timeout: every call that waits on the server ends by it.

A call's ``timeout`` argument defaults to :data:`DEFAULT`, which means "the client's
``timeout``" (30 s unless the client was given another); ``None`` passed explicitly waits
without end, a number waits that long. A web worker calling ``fetch`` while the server is
unreachable then gets :class:`~triplit_sync.TriplitTimeoutError` long before its own worker
timeout kills it.
"""

from __future__ import annotations

from typing import Optional, Union

__all__ = ["DEFAULT", "DEFAULT_TIMEOUT", "TimeoutArg", "check_timeout", "resolve"]

#: The default of ``TriplitClient(timeout=...)``, in seconds.
DEFAULT_TIMEOUT = 30.0


class _UseClientDefault:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<the client's default timeout>"


#: "Use the client's default timeout" (the default of every ``timeout`` argument).
DEFAULT = _UseClientDefault()

TimeoutArg = Union[float, None, _UseClientDefault]


def check_timeout(timeout: object, what: str = "timeout", *, positive: bool = False) -> Optional[float]:
    """``timeout`` as seconds (or None), or ValueError naming the bad value. ``positive``
    refuses 0 too (an HTTP request cannot be made in no time; a wait can: it just checks)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not (timeout > 0 if positive else timeout >= 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{what} must be a {kind} number of seconds or None, not {timeout!r}")
    return float(timeout)


def resolve(timeout: TimeoutArg, default: Optional[float]) -> Optional[float]:
    """The seconds a call waits: its own ``timeout``, or the client's ``default``."""
    if isinstance(timeout, _UseClientDefault):
        return default
    return check_timeout(timeout)
