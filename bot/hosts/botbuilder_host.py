"""The botbuilder host (Bot Framework SDK 4.17): botbuilder resolves the bot's outbound credentials.

`ConfigurationBotFrameworkAuthentication` reads the `MicrosoftApp*` settings (as `APP_ID`,
`APP_PASSWORD`, `APP_TYPE`, `APP_TENANTID`) and botbuilder's cloud settings, and gives the connector
credentials (password, certificate or managed identity; public or sovereign cloud). Its token call
blocks (MSAL), so it runs in a thread. Inbound tokens are not checked by botbuilder: its validation
fetches keys with a blocking `requests.get` on the event loop; :mod:`bot.hosts.tokens` applies the
same rules against the async key cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botframework.connector.auth import AuthenticationConstants, ClaimsIdentity

from bot.hosts.host import Host
from bot.hosts.tokens import InboundAuth
from bot.settings import BotSettings


class _AuthConfig:
    """The attribute names botbuilder's configuration factories read (`APP_ID`, `APP_PASSWORD`, ...)."""

    def __init__(self, settings: BotSettings, overrides: Mapping[str, Any]) -> None:
        self.APP_ID = settings.app_id
        self.APP_PASSWORD = settings.app_password.get_secret_value()
        self.APP_TYPE = settings.app_type
        self.APP_TENANTID = settings.app_tenant_id
        for name, value in overrides.items():
            setattr(self, name, value)


class BotbuilderCredentials:
    def __init__(self, settings: BotSettings, overrides: Mapping[str, Any]) -> None:
        self._app_id = settings.app_id
        self._auth = ConfigurationBotFrameworkAuthentication(_AuthConfig(settings, overrides))

    def token_source(self) -> Callable[[], Awaitable[str]] | None:
        if not self._app_id:
            return None
        identity = ClaimsIdentity({AuthenticationConstants.AUDIENCE_CLAIM: self._app_id}, True)
        factory = self._auth.create_connector_factory(identity)
        audience = self._auth.get_originating_audience()
        credentials: Any = None

        async def fetch() -> str:
            nonlocal credentials
            if credentials is None:
                # the connector botbuilder would build carries the credentials it resolved
                credentials = (await factory.create("https://unused.invalid/", audience)).config.credentials
            token: str = await asyncio.to_thread(credentials.get_access_token)
            return token

        return fetch


def botbuilder_host(settings: BotSettings, overrides: Mapping[str, Any]) -> Host:
    auth = InboundAuth.configured(settings.app_id, settings.inbound_tenant_id, overrides)
    return Host("botbuilder", auth, BotbuilderCredentials(settings, overrides))
