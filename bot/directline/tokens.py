"""Direct Line tokens for the local Direct Line: HS256 JWTs bound to one conversation and one user.

The signing key is random per process: conversations live in this process's memory, so a token
that outlived the process would point at nothing anyway.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import jwt

from bot.identity.principal import Principal, principal

TOKEN_LIFETIME_S = 30 * 60
STREAM_TOKEN_LIFETIME_S = 2 * 60
ISSUER = "ragbot-directline"
Scope = Literal["conversation", "stream"]


class TokenError(Exception):
    """The token is missing, forged, expired or for another conversation (answered with 401/403)."""


@dataclass(frozen=True)
class TokenClaims:
    conversation_id: str
    user_id: str
    user_name: str | None
    scope: Scope
    client: str = ""
    """Who asked for the token (`bot.directline.clients.client_of`): its conversation counts as theirs."""
    principal: Principal | None = None
    """The signed-in Entra user the token endpoint found (App Service authentication), if any."""


class TokenIssuer:
    """Signs and checks tokens; `clock` (epoch seconds) is injectable so tests can mint old tokens."""

    def __init__(self, key: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self._key = key or secrets.token_bytes(32)
        self.clock = clock

    def issue(
        self,
        conversation_id: str,
        user_id: str,
        user_name: str | None = None,
        scope: Scope = "conversation",
        client: str = "",
        who: Principal | None = None,
    ) -> str:
        now = int(self.clock())
        lifetime = TOKEN_LIFETIME_S if scope == "conversation" else STREAM_TOKEN_LIFETIME_S
        claims = {
            "iss": ISSUER,
            "iat": now,
            "exp": now + lifetime,
            "conv": conversation_id,
            "user": user_id,
            "scp": scope,
        }
        if user_name:
            claims["name"] = user_name
        if client:
            claims["cli"] = client
        if who is not None:
            claims["oid"], claims["tid"] = who.object_id, who.tenant_id
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str, scope: Scope = "conversation") -> TokenClaims:
        """The token's claims, or TokenError; a stream token never works as a conversation token."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "iss", "conv", "user", "scp"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise TokenError("invalid token") from exc
        if claims["scp"] != scope:
            raise TokenError(f"not a {scope} token")
        return TokenClaims(
            conversation_id=str(claims["conv"]),
            user_id=str(claims["user"]),
            user_name=claims.get("name"),
            scope=scope,
            client=str(claims.get("cli") or ""),
            principal=principal(claims.get("oid"), claims.get("tid")),
        )
