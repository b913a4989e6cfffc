"""Token minting for tests and development: JWTs the local server (or any server sharing the
secret) accepts."""

from __future__ import annotations

import time
from typing import Any, Dict, Mapping, Optional

from jose import jwt

__all__ = ["DEFAULT_SECRET", "mint_token"]

#: The secret ``triplit dev`` uses; fine for tests, never for production.
DEFAULT_SECRET = "jwt-key-for-development-only"


def mint_token(
    secret: str,
    claims: Optional[Mapping[str, Any]] = None,
    *,
    sub: Optional[str] = None,
    token_type: Optional[str] = None,
    expires_in: Optional[float] = None,
    algorithm: str = "HS256",
) -> str:
    """Sign a JWT the way a Triplit server with ``jwtSecret=secret`` accepts it.

    ``token_type="secret"`` makes a service (admin) token that bypasses permissions,
    ``token_type="anon"`` an anonymous one; ``sub`` makes a user token; ``expires_in`` seconds
    sets ``exp`` (a negative value gives an already expired token).

        >>> token = mint_token("s3cret", sub="alice", expires_in=3600)
    """
    payload: Dict[str, Any] = dict(claims or {})
    if sub is not None:
        payload["sub"] = sub
    if token_type is not None:
        if token_type not in ("secret", "anon", "test"):
            raise ValueError(f"token_type must be 'secret', 'anon' or 'test', not {token_type!r}")
        payload["x-triplit-token-type"] = token_type
    if expires_in is not None:
        payload["exp"] = int(time.time() + expires_in)
    return str(jwt.encode(payload, secret, algorithm=algorithm))
