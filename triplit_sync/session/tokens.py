"""JWT claims and Triplit roles, read without verifying signatures.

The client only needs a token's expiry and roles (to schedule refreshes and to refuse a token
that would change who the session is); the server does all authorization. Matching follows
the server's rules (PROTOCOL.md §7.3): every key of a role's ``match`` pattern must be present
in the claims; a string starting with ``$`` captures the claim's value; nested objects match
recursively; anything else must be equal.

A *claims path* (the server's ``claimsPath``, e.g. an Auth0 namespace) says where an external
token keeps the claims the server uses: roles, identity and ``$session`` come from the object
at that path, while the expiry stays the token's own top-level ``exp`` (PROTOCOL.md §7.1).
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
    "INTERNAL_TOKEN_TYPES",
    "Roles",
    "check_claims_path",
    "claims_at_path",
    "decode_claims",
    "expires_at",
    "identity_key",
    "is_expired",
    "match_roles",
    "roles_equivalent",
    "session_variables",
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


#: ``x-triplit-token-type`` values of the server's own tokens: a claims path never applies to them.
INTERNAL_TOKEN_TYPES = ("test", "anon", "secret")


def check_claims_path(path: Any) -> Optional[str]:
    """``path`` if it is a usable claims path (or ``None``); raises ValueError naming it otherwise."""
    if path is None:
        return None
    if not isinstance(path, str) or not all(path.split(".")):
        raise ValueError(f"claims_path must be dotted claim names, none empty (like 'app' or "
                         f"'https://triplit/claims'), not {path!r}")
    return path


def claims_at_path(claims: Mapping[str, Any], path: Optional[str]) -> Dict[str, Any]:
    """The claims the server reads from a token whose payload is ``claims``.

    Internal tokens (``x-triplit-token-type`` test / anon / secret) and ``path=None`` give the
    payload itself; otherwise the object at the dotted ``path`` (split on ``.``, as the server
    does: a claim name holding a dot cannot be reached). A token without an object there is
    refused with :class:`TokenDecodingError`: the server would answer it with INTERNAL_ERROR.
    """
    if path is None or claims.get("x-triplit-token-type") in INTERNAL_TOKEN_TYPES:
        return dict(claims)
    node: Any = claims
    for name in path.split("."):
        node = node.get(name) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        raise TokenDecodingError(f"the token has no claims object at claims_path {path!r}")
    return dict(node)


def session_variables(claims: Mapping[str, Any]) -> Dict[str, Any]:
    """What the server makes of a token's claims as ``$session`` / ``$token`` (and matches roles
    against): the claims, plus ``SESSION_USER_ID`` from the legacy ``x-triplit-user-id`` and
    ``_scope``, the ``scope`` string split on spaces (PROTOCOL.md §7.2)."""
    out: Dict[str, Any] = {}
    if "x-triplit-user-id" in claims:
        out["SESSION_USER_ID"] = claims["x-triplit-user-id"]
    out.update(claims)
    if isinstance(out.get("scope"), str) and "_scope" not in out:
        out["_scope"] = out["scope"].split(" ")
    return out


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
