"""JWT claims and Triplit roles, read without verifying signatures.

The client only needs a token's expiry and roles (to schedule refreshes and to refuse a token
that would change who the session is); the server does all authorization. Matching follows
the server's rules (PROTOCOL.md §7.3): every key of a role's ``match`` pattern must be present
in the claims; a string starting with ``$`` captures the claim's value; nested objects match
recursively; anything else must be equal.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Dict, Mapping, Optional

from jose import jwt
from jose.exceptions import JOSEError

from ..errors import TokenDecodingError
from ..schema.model import DEFAULT_ROLES

__all__ = [
    "DEFAULT_ROLES",
    "Roles",
    "decode_claims",
    "expires_at",
    "identity_key",
    "is_expired",
    "match_roles",
    "roles_equivalent",
]


#: role name -> the variables its pattern captured, e.g. ``{"user": {"userId": "alice"}}``
Roles = Dict[str, Dict[str, Any]]


def decode_claims(token: Any) -> Dict[str, Any]:
    """The claims of a JWT, unverified. Raises :class:`TokenDecodingError` (never showing the token)."""
    if not isinstance(token, str) or not token:
        raise TokenDecodingError(f"a token must be a non-empty string, not {type(token).__name__}")
    try:
        claims = jwt.get_unverified_claims(token)
    except (JOSEError, ValueError, TypeError) as e:
        raise TokenDecodingError(f"the token could not be decoded as a JWT ({type(e).__name__})") from None
    if not isinstance(claims, dict):
        raise TokenDecodingError("the token's payload is not a JSON object")
    return claims


def expires_at(claims: Mapping[str, Any]) -> Optional[float]:
    """The ``exp`` claim as a Unix time, or ``None`` for a token that never expires."""
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return float(exp)


def is_expired(claims: Mapping[str, Any], *, now: Optional[float] = None) -> bool:
    """True once ``exp`` has passed (the server's rule: ``exp * 1000 < Date.now()``)."""
    exp = expires_at(claims)
    return exp is not None and exp < (time.time() if now is None else now)


def _match(pattern: Any, value: Any, captured: Dict[str, Any]) -> bool:
    if isinstance(pattern, str) and pattern.startswith("$"):
        captured[pattern[1:]] = value
        return True
    if isinstance(pattern, Mapping):
        if not isinstance(value, Mapping):
            return False
        return all(k in value and _match(p, value[k], captured) for k, p in pattern.items())
    if isinstance(pattern, bool) or isinstance(value, bool):
        return pattern is value  # JS ===: true is not 1
    return bool(pattern == value)


def match_roles(claims: Mapping[str, Any], roles: Optional[Mapping[str, Any]]) -> Roles:
    """The roles (with captured variables) that ``claims`` hold under a schema's role definitions.

    ``roles=None`` means the server's :data:`DEFAULT_ROLES`.

        >>> match_roles({"sub": "alice"}, None)
        {'authenticated': {'sub': 'alice'}}
    """
    definitions = DEFAULT_ROLES if roles is None else roles
    held: Roles = {}
    for name, definition in definitions.items():
        pattern = definition.get("match", {}) if isinstance(definition, Mapping) else {}
        captured: Dict[str, Any] = {}
        if isinstance(pattern, Mapping) and _match(pattern, claims, captured):
            held[name] = captured
    return held


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def roles_equivalent(a: Optional[Roles], b: Optional[Roles]) -> bool:
    """The server's refresh rule: the same role names, each with the same captured variables."""
    return _canonical(a or {}) == _canonical(b or {})


def identity_key(claims: Mapping[str, Any], roles: Roles) -> str:
    """A stable key for *who* a token speaks for: its type, ``sub`` and roles.

    Pending writes are owned by this key and only ever sent under a token with the same key.
    Refreshed tokens of one user share it; another user, or the same user with other roles,
    does not. The key holds a digest, never the token.
    """
    kind = claims.get("x-triplit-token-type") or "user"
    digest = hashlib.sha256(
        _canonical({"type": kind, "sub": claims.get("sub"), "roles": roles}).encode()
    ).hexdigest()[:16]
    return f"{kind}:{digest}"
