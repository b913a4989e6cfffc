"""Token minting for tests and development: JWTs the local server (or any server sharing the
secret) accepts, and tokens shaped like those of real identity providers, signed with a key pair
of the test's own (the server verifies them with the public key, its ``externalJwtSecret``)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from ..session import DEFAULT_SECRET, mint_token

__all__ = [
    "DEFAULT_SECRET",
    "KeyPair",
    "auth0_claims",
    "clerk_claims",
    "generate_key_pair",
    "mint_token",
    "supabase_claims",
]

@dataclass(frozen=True)
class KeyPair:
    """An RS256 or ES256 key pair for signing test tokens the way an identity provider does.

    Give ``public_pem`` to the server (``TriplitTestServer(external_key=pair)``, or its
    ``externalJwtSecret``) and sign with :meth:`sign`. The private key never shows in ``repr``.

        keys = generate_key_pair()
        token = keys.sign(auth0_claims("auth0|alice", {"role": "editor"}), expires_in=3600)
    """

    algorithm: str
    public_pem: str
    private_pem: str = field(repr=False)
    key_id: str = "test-key"

    def sign(self, claims: Mapping[str, Any], *, expires_in: Optional[float] = None) -> str:
        """A token with ``claims`` signed by this pair's private key (``kid`` = ``key_id``)."""
        return mint_token(self.private_pem, claims, expires_in=expires_in, algorithm=self.algorithm,
                          key_id=self.key_id)


def generate_key_pair(algorithm: str = "RS256", *, bits: int = 2048) -> KeyPair:
    """A fresh key pair: ``"RS256"`` (RSA, ``bits`` long, as Auth0 and Clerk sign) or ``"ES256"``
    (P-256, as Supabase's asymmetric keys sign). @triplit/server 1.1.8 verifies both with the
    public key PEM as its ``externalJwtSecret``.
    """
    if algorithm == "RS256":
        import rsa
        from jose.backends.rsa_backend import RSAKey

        _, private = rsa.newkeys(bits)
        key = RSAKey(private.save_pkcs1().decode(), algorithm)
        return KeyPair(algorithm, key.public_key().to_pem().decode(), key.to_pem().decode())
    if algorithm == "ES256":
        import ecdsa

        signing = ecdsa.SigningKey.generate(curve=ecdsa.NIST256p)
        return KeyPair(algorithm, signing.verifying_key.to_pem().decode(),
                       signing.to_pem(format="pkcs8").decode())
    raise ValueError(f"algorithm must be 'RS256' or 'ES256', not {algorithm!r}")


# --------------------------------------------------------------------------- provider shapes
# What real tokens of these providers carry besides the claims an app adds (their docs, 2025);
# the values are made up. None has `x-triplit-token-type`: the server treats them as external.


def auth0_claims(
    user_id: str,
    custom: Optional[Mapping[str, Any]] = None,
    *,
    namespace: str = "https://triplit/claims",
    domain: str = "example.auth0.com",
    audience: str = "https://api.example.com",
    scope: str = "openid profile email",
) -> Dict[str, Any]:
    """An Auth0 access token's claims with the app's claims under one namespaced claim.

    Auth0 keeps custom claims apart under a namespace (a URL-like claim name); the Triplit
    server and client then read them with ``claims_path=namespace``. The namespaced object gets
    ``sub`` too (the default ``authenticated`` role matches on it) and ``custom``. Triplit
    splits a claims path on ``.``, so the namespace must not contain one.

        claims = auth0_claims("auth0|alice", {"role": "editor"})
        # {"iss": "https://example.auth0.com/", "sub": "auth0|alice", ...,
        #  "https://triplit/claims": {"sub": "auth0|alice", "role": "editor"}}
    """
    if not namespace or "." in namespace:
        raise ValueError(f"namespace must be a claim name without '.' (a claims path splits on it), "
                         f"not {namespace!r}")
    now = int(time.time())
    return {
        "iss": f"https://{domain}/",
        "sub": user_id,
        "aud": [audience, f"https://{domain}/userinfo"],
        "iat": now,
        "azp": "exampleClientId0123456789",
        "scope": scope,
        namespace: {"sub": user_id, **dict(custom or {})},
    }


def clerk_claims(
    user_id: str,
    custom: Optional[Mapping[str, Any]] = None,
    *,
    issuer: str = "https://example.clerk.accounts.dev",
    authorized_party: str = "http://localhost:3000",
    session_id: Optional[str] = None,
) -> Dict[str, Any]:
    """A Clerk session token's claims (version 2), with ``custom`` at the top level, where a
    Clerk JWT template puts them (no claims path needed). ``nbf`` is 10 s back, as Clerk sets it."""
    now = int(time.time())
    claims: Dict[str, Any] = {
        "azp": authorized_party,
        "iat": now,
        "iss": issuer,
        "nbf": now - 10,
        "sid": session_id or f"sess_{uuid.uuid4().hex[:24]}",
        "sub": user_id,
        "v": 2,
    }
    claims.update(custom or {})
    return claims


def supabase_claims(
    user_id: str,
    custom: Optional[Mapping[str, Any]] = None,
    *,
    role: str = "authenticated",
    email: Optional[str] = None,
    project_ref: str = "example",
    app_metadata: Optional[Mapping[str, Any]] = None,
    user_metadata: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """A Supabase Auth access token's claims: ``sub`` (the user's UUID), ``role``
    (``"authenticated"``, or ``"anon"``), ``aud`` (the same as ``role`` for those two) and the
    rest of its fixed claims; ``custom`` at the top level (a custom access token hook adds them there)."""
    now = int(time.time())
    claims: Dict[str, Any] = {
        "iss": f"https://{project_ref}.supabase.co/auth/v1",
        "sub": user_id,
        "aud": role if role in ("authenticated", "anon") else "authenticated",
        "iat": now,
        "email": email or "",
        "phone": "",
        "app_metadata": dict(app_metadata or {"provider": "email", "providers": ["email"]}),
        "user_metadata": dict(user_metadata or {}),
        "role": role,
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": role == "anon",
    }
    claims.update(custom or {})
    return claims
