"""The Microsoft 365 Agents SDK host: the SDK's MSAL connection gives the bot's outbound token.

The service connection is configured as the Agents SDK's samples do
(`CONNECTIONS__SERVICE_CONNECTION__SETTINGS__*`, loaded with `load_configuration_from_env`), filled
from the `MicrosoftApp*` names when those are what is set (`BotSettings` reconciles the two).
`MsalAuth` builds its MSAL client (authority discovery: blocking HTTP) on the calling thread and
then acquires tokens in a thread, so the whole call runs off the event loop. Inbound tokens are not
checked by the SDK's `JwtTokenValidator` (`PyJWKClient`: no async fetch, no refresh-ahead, one
thread per waiting request): :mod:`bot.hosts.tokens` checks them against the async key cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from microsoft_agents.activity import load_configuration_from_env
from microsoft_agents.authentication.msal import MsalConnectionManager
from microsoft_agents.hosting.core import AccessTokenProviderBase

from bot.hosts.host import Host
from bot.hosts.tokens import InboundAuth
from bot.settings import BotSettings

BOT_CONNECTOR_SCOPE = "https://api.botframework.com"
MULTI_TENANT_AUTHORITY_TENANT = "botframework.com"
AUTH_TYPES = {
    "MultiTenant": "ClientSecret",
    "SingleTenant": "ClientSecret",
    "UserAssignedMSI": "UserManagedIdentity",
}


def connection_environment(settings: BotSettings, overrides: Mapping[str, Any]) -> dict[str, str]:
    """The service connection in the Agents SDK's own environment names."""
    prefix = "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__"
    tenant = settings.app_tenant_id
    if settings.app_type == "MultiTenant" or not tenant:
        tenant = MULTI_TENANT_AUTHORITY_TENANT
    env = {
        f"{prefix}CLIENTID": settings.app_id,
        f"{prefix}CLIENTSECRET": settings.app_password.get_secret_value(),
        f"{prefix}TENANTID": tenant,
        f"{prefix}AUTHTYPE": AUTH_TYPES[settings.app_type],
    }
    login_url = overrides.get("TO_CHANNEL_FROM_BOT_LOGIN_URL")
    if login_url:
        env[f"{prefix}AUTHORITY"] = str(login_url)
    return env


class AgentsCredentials:
    def __init__(self, settings: BotSettings, overrides: Mapping[str, Any]) -> None:
        self._enabled = bool(settings.app_id)
        self._scope = str(overrides.get("TO_CHANNEL_FROM_BOT_OAUTH_SCOPE") or BOT_CONNECTOR_SCOPE)
        config = load_configuration_from_env(connection_environment(settings, overrides))
        self._connections = MsalConnectionManager(**config) if self._enabled else None

    def token_source(self) -> Callable[[], Awaitable[str]] | None:
        if self._connections is None:
            return None
        provider: AccessTokenProviderBase = self._connections.get_default_connection()
        scopes = [f"{self._scope.rstrip('/')}/.default"]

        def blocking() -> str:
            return asyncio.run(provider.get_access_token(self._scope, scopes))

        async def fetch() -> str:
            return await asyncio.to_thread(blocking)

        return fetch


def agents_host(settings: BotSettings, overrides: Mapping[str, Any]) -> Host:
    auth = InboundAuth.configured(settings.app_id, settings.inbound_tenant_id, overrides)
    return Host("agents", auth, AgentsCredentials(settings, overrides))
