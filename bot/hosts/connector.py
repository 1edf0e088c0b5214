"""Outbound Bot Connector calls on one shared aiohttp session, with the bearer token cached.

botbuilder's stock path builds a msrest `ConnectorClient` per turn and posts with blocking `requests`
in a thread pool; here one client per serviceUrl is reused, replies are posted as JSON with aiohttp,
and the token is fetched (by the host's SDK, off the event loop) only when the cached one is close to
expiry. A token that cannot be had within `TOKEN_DEADLINE_S` is a :class:`CredentialError`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt

from bot.hosts.errors import CredentialError, OutboxError

TOKEN_MARGIN_S = 300.0
"""Refresh this long before `exp`, so a token never expires in flight."""
FALLBACK_TOKEN_LIFETIME_S = 600.0
"""Used when a token is not a JWT with `exp` (then it is refreshed every ten minutes)."""
TOKEN_DEADLINE_S = 10.0
"""MSAL's own HTTP calls have no deadline; a reply waits no longer than this for its token."""
RETRY_FETCH_AFTER_S = 5.0
"""After a failed fetch, replies waiting for a token fail at once for this long (no queue of fetches)."""
MAX_RETRY_AFTER_S = 60.0


class TokenCache:
    """One bearer token, reused until `margin` seconds before it expires; one fetch at a time."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[str]],
        *,
        margin: float = TOKEN_MARGIN_S,
        deadline: float = TOKEN_DEADLINE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._margin = margin
        self._deadline = deadline
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._failed: tuple[float, str] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """The cached token or a new one; raises CredentialError when none can be had."""
        if self._token and self._clock() < self._refresh_at:
            return self._token
        async with self._lock:
            if self._token and self._clock() < self._refresh_at:
                return self._token
            if self._failed is not None and self._clock() - self._failed[0] < RETRY_FETCH_AFTER_S:
                raise CredentialError(self._failed[1])
            try:
                async with asyncio.timeout(self._deadline):
                    token = await self._fetch()
                if not token:
                    raise ValueError("the token endpoint gave no token")
            except Exception as exc:  # DNS, the token endpoint's error, MSAL's: the SDKs raise anything
                reason = (
                    f"no token within {self._deadline:g} s"
                    if isinstance(exc, TimeoutError)
                    else f"{type(exc).__name__}: {exc}"[:300]
                )
                self._failed = (self._clock(), reason)
                raise CredentialError(reason) from exc
            self._failed = None
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
                        raise OutboxError(
                            response.status,
                            (await response.content.read(2000)).decode("utf-8", "replace"),
                            _retry_after(response.headers.get("Retry-After")),
                        )
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise OutboxError(0, f"cannot reach {self.service_url}: {exc!r}") from exc
            return _activity_id(body)
        raise OutboxError(401, "the channel refused the bot's token twice")


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), at most `MAX_RETRY_AFTER_S`."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


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
