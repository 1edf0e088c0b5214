"""Settings of `bot.identity`: where group memberships come from and how long they are trusted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ByteSize, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class IdentitySettings(BaseSettings):
    """`RAGBOT_GROUP_LOOKUP` and the Microsoft Graph client; by default the bot's own registration
    (`MicrosoftAppId`, `MicrosoftAppPassword`, `MicrosoftAppTenantId`) signs in to Graph."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    group_lookup: Literal["auto", "graph", "off"] = Field(
        default="auto",
        validation_alias="RAGBOT_GROUP_LOOKUP",
        description="graph: each signed-in asker's groups from Microsoft Graph; auto: graph when "
        "AZURE_SEARCH_PERMITTED_GROUPS_COLUMN is set; off: no groups (restricted documents only by user)",
    )
    graph_endpoint: str = Field(
        default="https://graph.microsoft.com",
        pattern=r"^https?://[^\s/]+/?$",
        validation_alias="RAGBOT_GRAPH_ENDPOINT",
        description="Microsoft Graph's root (national clouds: https://graph.microsoft.us, ...)",
    )
    graph_authority: str = Field(
        default="login.microsoftonline.com",
        validation_alias="RAGBOT_GRAPH_AUTHORITY",
        description="Entra ID's authority host for the app-only token (national clouds differ)",
    )
    graph_tenant_id: str = Field(
        default="", validation_alias="RAGBOT_GRAPH_TENANT_ID", description="default: MicrosoftAppTenantId"
    )
    graph_client_id: str = Field(
        default="", validation_alias="RAGBOT_GRAPH_CLIENT_ID", description="default: MicrosoftAppId"
    )
    graph_client_secret: SecretStr = Field(
        default=SecretStr(""),
        validation_alias="RAGBOT_GRAPH_CLIENT_SECRET",
        description="default: MicrosoftAppPassword",
    )
    graph_certificate_path: Path | None = Field(
        default=None,
        validation_alias="RAGBOT_GRAPH_CERTIFICATE_PATH",
        description="a PEM or PKCS12 certificate with its private key, instead of a secret",
    )
    graph_managed_identity: bool = Field(
        default=False,
        validation_alias="RAGBOT_GRAPH_MANAGED_IDENTITY",
        description="sign in to Graph as the managed identity (RAGBOT_GRAPH_CLIENT_ID: a user-assigned one)",
    )
    graph_timeout: float = Field(
        default=5.0,
        gt=0,
        le=60,
        validation_alias="RAGBOT_GRAPH_TIMEOUT",
        description="seconds per Graph read",
    )
    groups_cache_seconds: float = Field(
        default=600.0, ge=0, le=86_400, validation_alias="RAGBOT_GROUPS_CACHE_SECONDS"
    )
    groups_cache_users: int = Field(
        default=10_000, ge=1, le=10_000_000, validation_alias="RAGBOT_GROUPS_CACHE_USERS"
    )
    groups_cache_bytes: ByteSize = Field(
        default=ByteSize(16 * 1024**2), ge=64 * 1024, validation_alias="RAGBOT_GROUPS_CACHE_BYTES"
    )
    trust_principal_headers: bool = Field(
        default=False,
        validation_alias="RAGBOT_TRUST_PRINCIPAL_HEADERS",
        description="the web chat's token endpoint reads App Service authentication's X-MS-CLIENT-PRINCIPAL "
        "headers: only behind App Service authentication or a proxy that sets them and strips the client's",
    )
    dev_user_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="RAGBOT_DEV_USER_GROUPS",
        description="local use only (no MicrosoftAppId): every asker counts as a member of these groups",
    )

    @field_validator("dev_user_groups", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
