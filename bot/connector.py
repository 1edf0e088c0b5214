"""Outbound Bot Connector calls on one shared aiohttp session, with the bearer token cached.

botbuilder's stock path builds a msrest `ConnectorClient` per turn and posts with blocking `requests`
in a thread pool; here one client per serviceUrl is reused, replies are posted as JSON with aiohttp,
and the token is fetched (in a thread: msal blocks) only when the cached one is close to expiry.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt

TOKEN_MARGIN_S = 300.0
"""Refresh this long before `exp`, so a token never expires in flight."""
FALLBACK_TOKEN_LIFETIME_S = 600.0
"""Used when a token is not a JWT with `exp` (then it is refreshed every ten minutes)."""


class ConnectorError(Exception):
    """The channel refused or failed a send; `status` 0 means it could not be reached."""

    def __init__(self, status: int, detail: str = "") -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"connector answered {status}: {detail[:200]}" if status else detail)


class TokenCache:
    """One bearer token, reused until `margin` seconds before it expires; one fetch at a time."""

    def __init__(
        self,
        fetch: Callable[[], str],
        *,
        margin: float = TOKEN_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._margin = margin
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        if self._token and self._clock() < self._refresh_at:
            return self._token
        async with self._lock:
            if self._token and self._clock() < self._refresh_at:
                return self._token
            token = await asyncio.to_thread(self._fetch)
            self._token, self._refresh_at = token, self._expiry(token) - self._margin
            return token

    def invalidate(self) -> None:
        self._token, self._refresh_at = None, 0.0

    def _expiry(self, token: str) -> float:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            return float(claims["exp"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return self._clock() + FALLBACK_TOKEN_LIFETIME_S


class ChannelConnector:
    """Sends activities to one serviceUrl (`/v3/conversations/{id}/activities[/{replyToId}]`)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        service_url: str,
        token: TokenCache | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self.service_url = service_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, activity: dict[str, Any]) -> str | None:
        """Post one activity; returns the id the channel gave it (None when it gives none)."""
        conversation = quote(activity["conversation"]["id"], safe="")
        url = f"{self.service_url}/v3/conversations/{conversation}/activities"
        if activity.get("replyToId"):
            url += "/" + quote(str(activity["replyToId"]), safe="")
        for attempt in (1, 2):
            headers = {}
            if self._token is not None:
                headers["Authorization"] = f"Bearer {await self._token.get()}"
            try:
                async with self._session.post(
                    url, json=activity, headers=headers, timeout=self._timeout
                ) as response:
                    if response.status == 401 and self._token is not None and attempt == 1:
                        self._token.invalidate()
                        continue
                    if response.status >= 400:
                        raise ConnectorError(response.status, await response.text())
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise ConnectorError(0, f"cannot reach {self.service_url}: {exc!r}") from exc
            return _activity_id(body)
        raise ConnectorError(401, "the channel refused the bot's token twice")


def _activity_id(body: bytes) -> str | None:
    """`{"id": ...}` from a ResourceResponse body; channels may also answer with no body at all."""
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return str(value) if value else None
