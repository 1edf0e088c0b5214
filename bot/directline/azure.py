"""Azure mode: exchange the Direct Line secret for a conversation token, server-side.

The token carries a user id, so Direct Line sends the bot `membersAdded` (bot and user) as soon as
Web Chat connects and the welcome arrives before the user types. The secret never leaves this process.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from pydantic import SecretStr

from rag.http_sessions import client_session

log = logging.getLogger(__name__)


class DirectLineUnavailable(Exception):
    """Direct Line refused or did not answer the token request."""


class AzureDirectLine:
    def __init__(self, secret: SecretStr, endpoint: str) -> None:
        self._secret = secret
        self.endpoint = endpoint.rstrip("/")
        self._session: ClientSession | None = None

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self._session = client_session(timeout=ClientTimeout(total=15))
        yield
        await self._session.close()

    async def new_token(self, user_id: str | None = None) -> dict[str, Any]:
        """`{conversationId, token, expires_in, userId, domain}` for a new visitor; `user_id` (a signed-in
        user's bound id) is kept on every activity the token sends, else a random `dl_...`."""
        assert self._session is not None, "AzureDirectLine.lifecycle must run (app cleanup context)"
        user_id = user_id or f"dl_{secrets.token_urlsafe(12)}"
        headers = {"Authorization": f"Bearer {self._secret.get_secret_value()}"}
        try:
            async with self._session.post(
                f"{self.endpoint}/tokens/generate", json={"user": {"id": user_id}}, headers=headers
            ) as response:
                if response.status != 200:
                    raise DirectLineUnavailable(
                        f"Direct Line answered HTTP {response.status} to tokens/generate"
                    )
                body = await response.json()
        except (ClientError, TimeoutError, ValueError) as exc:
            raise DirectLineUnavailable(f"Direct Line token request failed: {type(exc).__name__}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            raise DirectLineUnavailable("Direct Line's token response has no token")
        return {
            "conversationId": body.get("conversationId"),
            "token": body["token"],
            "expires_in": body.get("expires_in"),
            "userId": user_id,
            "domain": self.endpoint,
        }
