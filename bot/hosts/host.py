"""The host seam: inbound authentication -> authenticated activity + caller; outbound connectors.

What differs between botbuilder and the Microsoft 365 Agents SDK is how the bot's own credentials are
configured and turned into a token for replying: that is a :class:`Credentials`, one per SDK
(`bot.hosts.botbuilder_host`, `bot.hosts.agents_host`). Everything else a host does is the same
and lives here, with no SDK type in it: token validation against the async OpenID key cache, one
aiohttp session, one connector per serviceUrl, tokens cached until near expiry.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from bot import json_text
from bot.activity import Activity
from bot.hosts.connector import ChannelConnector, TokenCache
from bot.hosts.openid import OpenIdCache
from bot.hosts.tokens import InboundAuth, TokenValidator
from rag.http_sessions import client_session

# MSAL fetches tokens with `requests`, whose urllib3 logs a WARNING per retried connection; a failed
# token fetch is reported once, by the endpoint, with the reason.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

MAX_CONNECTORS = 256
"""serviceUrls are few (one per channel and region); the cap only bounds what a flood could add."""


@dataclass(frozen=True)
class Caller:
    """Who called: the validated token's claims (empty with auth off)."""

    claims: dict[str, Any]


class Credentials(Protocol):
    """The SDK's part of a host: the bot's own token for posting to channels."""

    def token_source(self) -> Callable[[], Awaitable[str]] | None:
        """A coroutine function giving a fresh bearer token; None when auth is off (no token sent)."""
        ...


class Host:
    """One hosting of the turn logic: `name` says which SDK supplies the credentials."""

    def __init__(self, name: str, auth: InboundAuth, credentials: Credentials) -> None:
        self.name = name
        self.auth = auth
        self._session: aiohttp.ClientSession | None = None
        self.keys = OpenIdCache(lambda: self.session)
        self.validator = TokenValidator(auth, self.keys)
        source = credentials.token_source()
        self._token = TokenCache(source) if source is not None else None
        self._connectors: OrderedDict[str, ChannelConnector] = OrderedDict()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = client_session(limit=256, json_serialize=json_text.dumps)
        return self._session

    def start(self) -> None:
        """Fetch the signing keys ahead (in the background), so the first turn finds them."""
        self.validator.prefetch()

    async def close(self) -> None:
        await self.keys.close()
        if self._session is not None:
            await self._session.close()

    async def authenticate(self, activity: Activity, authorization: str) -> Caller:
        """Raises Unauthorized (401) or AuthUnavailable (503)."""
        claims = await self.validator.validate(authorization, activity["channelId"], activity["serviceUrl"])
        return Caller(claims)

    def service_url_allowed(self, service_url: str) -> bool:
        """https always (a validated token vouches for it); plain http only with auth off (local use)."""
        return service_url.startswith("https://") or (
            not self.auth.enabled and service_url.startswith("http://")
        )

    def connector(self, service_url: str) -> ChannelConnector:
        """The connector for this serviceUrl, built once and reused."""
        found = self._connectors.get(service_url)
        if found is not None:
            self._connectors.move_to_end(service_url)
            return found
        connector = self._connectors[service_url] = ChannelConnector(self.session, service_url, self._token)
        while len(self._connectors) > MAX_CONNECTORS:
            self._connectors.popitem(last=False)
        return connector
