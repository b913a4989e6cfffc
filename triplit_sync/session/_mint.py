"""Token minting: JWTs a Triplit server accepts, signed with its ``jwtSecret`` (HS256) or with
the private key whose public half is its ``externalJwtSecret`` (RS256 / ES256).

For tests and development (the local server's secret is :data:`DEFAULT_SECRET`) and for apps
that sign their own users' tokens in production (with their server's secret, never the default).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Mapping, Optional

from jose import jwt

__all__ = ["DEFAULT_SECRET", "mint_token"]

#: The secret ``triplit dev`` and ``triplit-sync dev`` use; fine for tests, never for production.
DEFAULT_SECRET = "jwt-key-for-development-only"

_ASYMMETRIC = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")


def mint_token(
    secret: str,
    claims: Optional[Mapping[str, Any]] = None,
    *,
    sub: Optional[str] = None,
    token_type: Optional[str] = None,
    expires_in: Optional[float] = None,
    algorithm: str = "HS256",
    key_id: Optional[str] = None,
) -> str:
    """Sign a JWT the way a Triplit server with ``jwtSecret=secret`` accepts it.

    ``token_type="secret"`` makes a service (admin) token that bypasses permissions,
    ``token_type="anon"`` an anonymous one; ``sub`` makes a user token; ``expires_in`` seconds
    sets ``exp`` (a negative value gives an already expired token). For ``RS256`` / ``ES256``
    (and their 384 / 512 variants) ``secret`` is a private key PEM (see :class:`KeyPair`);
    ``key_id`` sets the ``kid`` header, as providers do.

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
    if algorithm in _ASYMMETRIC and "PRIVATE KEY" not in secret:
        raise ValueError(f"{algorithm} signs with a private key PEM (generate_key_pair() makes one), "
                         "not a shared secret")
    headers = {"kid": key_id} if key_id is not None else None
    return str(jwt.encode(payload, secret, algorithm=algorithm, headers=headers))
