"""The hosting layer: botbuilder's CloudAdapter for inbound auth, a fast outbound path, request hygiene.

Inbound tokens are validated by botbuilder (`ConfigurationBotFrameworkAuthentication`, the
`MicrosoftApp*` settings). What the stock adapter does per turn and costs most - a new msrest
`ConnectorClient` and `UserTokenClient`, msrest (de)serialization of every activity, replies posted
with blocking `requests` in a thread pool - is replaced: activities stay JSON, one connector per
serviceUrl is kept, replies go out on one shared aiohttp session, and tokens are cached until near
expiry. Every malformed request gets a 4xx, never a 500.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity as BotActivity
from botframework.connector.auth import AuthenticateRequestResult, AuthenticationConstants

from bot import json_text
from bot.activity import Activity, BadActivity, check_activity
from bot.connector import ChannelConnector, ConnectorError, TokenCache
from bot.outbox import BufferedOutbox, ConnectorOutbox, Outbox
from bot.settings import BotSettings
from bot.turns import TurnHandler

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_CONNECTORS = 256
"""serviceUrls are few (one per channel and region); the cap only bounds what a flood could add."""


class _AuthConfig:
    """The attribute names botbuilder's configuration factories read (`APP_ID`, `APP_PASSWORD`, ...)."""

    def __init__(self, settings: BotSettings, overrides: Mapping[str, Any]) -> None:
        self.APP_ID = settings.app_id
        self.APP_PASSWORD = settings.app_password.get_secret_value()
        self.APP_TYPE = settings.app_type
        self.APP_TENANTID = settings.app_tenant_id
        for name, value in overrides.items():
            setattr(self, name, value)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class RagbotAdapter(CloudAdapter):
    """CloudAdapter whose turns run on activity JSON and reply through reused aiohttp connectors.

    `auth_overrides` sets further botbuilder configuration attributes (`CHANNEL_SERVICE`,
    `TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL`, ...) for sovereign clouds and tests.
    """

    def __init__(self, settings: BotSettings, auth_overrides: Mapping[str, Any] | None = None) -> None:
        super().__init__(ConfigurationBotFrameworkAuthentication(_AuthConfig(settings, auth_overrides or {})))
        self.auth_enabled = settings.auth_enabled
        self._session: aiohttp.ClientSession | None = None
        self._connectors: OrderedDict[tuple[str, str | None, str | None], ChannelConnector] = OrderedDict()
        self._tokens: dict[tuple[str | None, str | None], TokenCache] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256), json_serialize=json_text.dumps
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def authenticate(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        """botbuilder's validation; anything it cannot decode or verify is a PermissionError (401)."""
        probe = BotActivity(channel_id=activity["channelId"], service_url=activity["serviceUrl"])
        try:
            return await self.bot_framework_authentication.authenticate_request(probe, auth_header)
        except PermissionError:
            raise
        except Exception as exc:
            raise PermissionError(f"token not accepted: {type(exc).__name__}") from exc

    def service_url_allowed(self, service_url: str) -> bool:
        """https always (a validated token vouches for it); plain http only with auth off (local use)."""
        return service_url.startswith("https://") or (
            not self.auth_enabled and service_url.startswith("http://")
        )

    async def connector(self, service_url: str, auth: AuthenticateRequestResult) -> ChannelConnector:
        """The connector for this serviceUrl and identity, built once and reused."""
        app_id = auth.claims_identity.get_claim_value(AuthenticationConstants.AUDIENCE_CLAIM) or None
        key = (service_url, auth.audience, app_id)
        found = self._connectors.get(key)
        if found is not None:
            self._connectors.move_to_end(key)
            return found
        # botbuilder resolves the credentials (password, certificate, managed identity, sovereign cloud).
        client = await auth.connector_factory.create(service_url, auth.audience)
        credentials = client.config.credentials
        token = None
        cred_app_id = getattr(credentials, "microsoft_app_id", None)
        if cred_app_id and cred_app_id != AuthenticationConstants.ANONYMOUS_SKILL_APP_ID:
            token = self._tokens.get((cred_app_id, auth.audience))
            if token is None:
                token = self._tokens[(cred_app_id, auth.audience)] = TokenCache(credentials.get_access_token)
        connector = self._connectors[key] = ChannelConnector(self.session, service_url, token)
        while len(self._connectors) > MAX_CONNECTORS:
            self._connectors.popitem(last=False)
        return connector

    async def process_request(self, request: web.Request, turns: TurnHandler) -> web.Response:
        """`POST /api/messages`: check, authenticate, run the turn, answer with its result."""
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        if request.content_type != "application/json":
            return _error(415, "Content-Type must be application/json")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body is not valid JSON")
        try:
            activity = check_activity(body, raw)
        except BadActivity as exc:
            return _error(400, f"not a valid activity: {exc}")
        try:
            auth = await self.authenticate(activity, request.headers.get("Authorization", ""))
        except PermissionError as exc:
            log.warning("rejected a request to /api/messages: %s", exc)
            return _error(401, "unauthorized")
        if not self.service_url_allowed(activity["serviceUrl"]):
            return _error(400, "serviceUrl must be https")
        outbox: Outbox
        buffered = activity.get("deliveryMode") == "expectReplies"
        if buffered:
            outbox = BufferedOutbox(activity)
        else:
            outbox = ConnectorOutbox(activity, await self.connector(activity["serviceUrl"], auth))
        try:
            result = await turns.handle(activity, outbox)
        except ConnectorError as exc:
            log.warning("could not deliver a reply to %s: %s", activity["serviceUrl"], exc)
            return _error(502, "the reply could not be delivered to the channel")
        if result is not None:
            return web.json_response(result.body, status=result.status)
        if isinstance(outbox, BufferedOutbox):
            return web.json_response({"activities": outbox.activities})
        return web.Response(status=200)
