"""Entra ID bearer tokens for Azure OpenAI, fetched from an azure-identity credential and cached until
shortly before they expire (a fresh token per request would add a round trip to every answer)."""

from __future__ import annotations

import asyncio
import time

from azure.core.credentials_async import AsyncTokenCredential

from rag.errors import AuthError

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
REFRESH_MARGIN = 300.0  # seconds before expiry at which a token is replaced


class BearerTokens:
    def __init__(self, credential: AsyncTokenCredential, scope: str = COGNITIVE_SERVICES_SCOPE) -> None:
        self.credential, self.scope = credential, scope
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock = asyncio.Lock()

    async def header(self) -> str:
        """`Bearer <token>`, refreshed when it expires within :data:`REFRESH_MARGIN` seconds."""
        async with self._lock:
            if self._token is None or self._expires_on - time.time() < REFRESH_MARGIN:
                try:
                    token = await self.credential.get_token(self.scope)
                except Exception as exc:  # azure-identity raises several unrelated types
                    raise AuthError(f"could not get an Entra ID token for {self.scope}: {exc}") from exc
                self._token, self._expires_on = token.token, float(token.expires_on)
            return f"Bearer {self._token}"

    def forget(self) -> None:
        """Drop the cached token (after a 401), so the next call fetches a fresh one."""
        self._token = None

    async def close(self) -> None:
        await self.credential.close()


def default_credential() -> AsyncTokenCredential:
    """azure-identity's DefaultAzureCredential (managed identity, workload identity, Azure CLI, ...)."""
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()
