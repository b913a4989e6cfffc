"""Who the client is: the :class:`Session` a token starts (claims, roles, identity, expiry), what
users see of it (:class:`SessionInfo`) and why the server may end it (:class:`SessionErrorType`)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Mapping, Optional

from .tokens import (
    Roles,
    claims_at_path,
    decode_claims,
    expires_at,
    identity_key,
    is_expired,
    match_roles,
    session_variables,
)

__all__ = ["Session", "SessionErrorType", "SessionInfo"]


class SessionErrorType(str, Enum):
    """Why the server ended a session; a ``str``, so ``error == "TOKEN_EXPIRED"`` works."""

    UNAUTHORIZED = "UNAUTHORIZED"
    SCHEMA_MISMATCH = "SCHEMA_MISMATCH"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    ROLES_MISMATCH = "ROLES_MISMATCH"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SessionInfo:
    """What the client knows about its session (never the token itself).

    ``claims`` are the claims the server reads (with a ``claims_path``, the object at that
    path); ``expires_at`` comes from the token's top-level ``exp``. ``status`` is the
    connection status (``"OPEN"``, ``"CLOSED"``...).
    """

    claims: Mapping[str, Any]
    roles: Roles
    expires_at: Optional[_dt.datetime]
    status: str
    identity: str = field(repr=False)


class Session:
    """A token and what follows from it. The token never appears in ``repr``.

    ``claims`` are those at ``claims_path`` (all of them without one): roles, identity and
    ``$session`` follow from them; ``payload`` is the whole token, whose ``exp`` is the expiry;
    ``variables`` are the claims as the server turns them into ``$session`` (``_scope``...).
    """

    __slots__ = ("token", "payload", "claims", "variables", "roles", "identity", "refresh_handler",
                 "refresh_interval")

    def __init__(
        self,
        token: str,
        role_definitions: Optional[Mapping[str, Any]],
        *,
        refresh_handler: Optional[Callable[[], Optional[str]]] = None,
        refresh_interval: Optional[float] = None,
        claims_path: Optional[str] = None,
    ) -> None:
        self.payload = decode_claims(token)
        self.claims = claims_at_path(self.payload, claims_path)
        self.variables = session_variables(self.claims)
        self.token = token
        self.roles = match_roles(self.variables, role_definitions)
        self.identity = identity_key(self.claims, self.roles)
        self.refresh_handler = refresh_handler
        self.refresh_interval = refresh_interval

    @property
    def expires_at(self) -> Optional[float]:
        return expires_at(self.payload)

    def is_expired(self) -> bool:
        """True once the token's top-level ``exp`` has passed."""
        return is_expired(self.payload)

    def info(self, status: str) -> SessionInfo:
        exp = self.expires_at
        return SessionInfo(
            claims=dict(self.claims),
            roles={k: dict(v) for k, v in self.roles.items()},
            expires_at=None if exp is None else _dt.datetime.fromtimestamp(exp, _dt.timezone.utc),
            status=status,
            identity=self.identity,
        )

    def __repr__(self) -> str:
        return f"<Session identity={self.identity} roles={sorted(self.roles)} expires_at={self.expires_at}>"
