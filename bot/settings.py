"""Settings of the channel layer: the Bot Framework registration and the service's own `RAGBOT_*` knobs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, ByteSize, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

AppType = Literal["MultiTenant", "SingleTenant", "UserAssignedMSI"]
CSP_SOURCE = re.compile(
    r"'self'|'none'|[a-z][a-z0-9+.-]*:|([a-z][a-z0-9+.-]*://)?(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*(:(\d{1,5}|\*))?(/[^\s;,']*)?",
    re.IGNORECASE,
)
"""One CSP host source (`https://*.contoso.com:443/path`), scheme source (`https:`) or keyword."""
AGENTS_CONNECTION = "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__"
"""The Agents SDK's names for the bot's registration (its samples' `.env`)."""
AGENTS_AUTH_TYPES = {"clientsecret": "ClientSecret", "usermanagedidentity": "UserManagedIdentity"}
MULTI_TENANT_TENANTS = ("", "botframework.com", "common", "organizations")


class BotSettings(BaseSettings):
    """`MicrosoftApp*` as Azure Bot Service samples name them, plus `RAGBOT_*` for this service."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    app_id: str = Field(default="", validation_alias=AliasChoices("MicrosoftAppId", "MICROSOFT_APP_ID"))
    app_password: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("MicrosoftAppPassword", "MICROSOFT_APP_PASSWORD")
    )
    app_type: AppType = Field(
        default="MultiTenant", validation_alias=AliasChoices("MicrosoftAppType", "MICROSOFT_APP_TYPE")
    )
    app_tenant_id: str = Field(
        default="", validation_alias=AliasChoices("MicrosoftAppTenantId", "MICROSOFT_APP_TENANT_ID")
    )
    bot_host: Literal["botbuilder", "agents"] = Field(
        default="botbuilder", validation_alias="RAGBOT_BOT_HOST"
    )
    agents_client_id: str = Field(default="", validation_alias=f"{AGENTS_CONNECTION}CLIENTID")
    agents_client_secret: SecretStr = Field(
        default=SecretStr(""), validation_alias=f"{AGENTS_CONNECTION}CLIENTSECRET"
    )
    agents_tenant_id: str = Field(default="", validation_alias=f"{AGENTS_CONNECTION}TENANTID")
    agents_auth_type: str = Field(default="", validation_alias=f"{AGENTS_CONNECTION}AUTHTYPE")
    host: str = Field(default="127.0.0.1", validation_alias="RAGBOT_HOST")
    port: int = Field(default=3978, ge=1, le=65535, validation_alias="RAGBOT_PORT")
    public_hostname: str | None = Field(default=None, validation_alias="RAGBOT_PUBLIC_HOSTNAME")
    app_name: str = Field(default="Contoso Help Desk", max_length=30, validation_alias="RAGBOT_APP_NAME")
    subtitle: str = Field(
        default="Answers from the knowledge base, with their sources.",
        max_length=200,
        validation_alias="RAGBOT_SUBTITLE",
    )
    data_dir: Path = Field(default=Path("data"), validation_alias="RAGBOT_DATA_DIR")
    allowed_tenants: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="RAGBOT_ALLOWED_TENANTS"
    )
    user_turns_per_minute: int = Field(
        default=20, ge=1, le=10_000, validation_alias="RAGBOT_USER_TURNS_PER_MINUTE"
    )
    show_intent: bool = Field(default=True, validation_alias="RAGBOT_SHOW_INTENT")
    streaming: bool = Field(default=True, validation_alias="RAGBOT_STREAMING")
    history_tokens: int = Field(default=2000, ge=0, le=100_000, validation_alias="RAGBOT_HISTORY_TOKENS")
    storage: Literal["sqlite", "memory", "redis", "blob", "cosmos"] = Field(
        default="sqlite",
        validation_alias="RAGBOT_STORAGE",
        description="where conversation memory, feedback and rate limits live; several replicas need "
        "redis, blob or cosmos",
    )
    redis_url: SecretStr | None = Field(
        default=None, description="redis:// or rediss:// URL", validation_alias="RAGBOT_REDIS_URL"
    )
    redis_prefix: str = Field(default="ragbot:", max_length=100, validation_alias="RAGBOT_REDIS_PREFIX")
    blob_account_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="https://<account>.blob.core.windows.net, signed in with Entra ID (managed identity)",
        validation_alias="RAGBOT_BLOB_ACCOUNT_URL",
    )
    blob_connection_string: SecretStr | None = Field(
        default=None, validation_alias="RAGBOT_BLOB_CONNECTION_STRING"
    )
    blob_container: str = Field(default="ragbot-state", validation_alias="RAGBOT_BLOB_CONTAINER")
    cosmos_endpoint: str | None = Field(default=None, validation_alias="RAGBOT_COSMOS_ENDPOINT")
    cosmos_key: SecretStr | None = Field(
        default=None, description="account key; without it, Entra ID", validation_alias="RAGBOT_COSMOS_KEY"
    )
    cosmos_database: str = Field(default="ragbot", validation_alias="RAGBOT_COSMOS_DATABASE")
    cosmos_container: str = Field(default="conversations", validation_alias="RAGBOT_COSMOS_CONTAINER")
    direct_line_secret: SecretStr | None = Field(default=None, validation_alias="DIRECT_LINE_SECRET")
    direct_line_endpoint: str = Field(
        default="https://directline.botframework.com/v3/directline",
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        validation_alias="DIRECT_LINE_ENDPOINT",
    )
    directline_conversation_bytes: ByteSize = Field(
        default=ByteSize(1024**2), ge=64 * 1024, validation_alias="RAGBOT_DIRECTLINE_CONVERSATION_BYTES"
    )
    """Local Direct Line: the most one conversation's activities hold (oldest dropped first)."""
    directline_total_bytes: ByteSize = Field(
        default=ByteSize(64 * 1024**2), ge=1024**2, validation_alias="RAGBOT_DIRECTLINE_TOTAL_BYTES"
    )
    """Local Direct Line: the most all conversations hold together (the heaviest gives up its oldest)."""
    directline_starts_per_minute: int = Field(
        default=30, ge=1, le=100_000, validation_alias="RAGBOT_DIRECTLINE_STARTS_PER_MINUTE"
    )
    """Web chat: tokens, and conversation starts, one client (IP address) may get in any minute."""
    directline_conversations_per_client: int = Field(
        default=50, ge=1, le=1000, validation_alias="RAGBOT_DIRECTLINE_CONVERSATIONS_PER_CLIENT"
    )
    """Local Direct Line: live conversations of one client; a new one ends that client's oldest."""
    header_timeout: float = Field(default=10.0, gt=0, le=300, validation_alias="RAGBOT_HEADER_TIMEOUT")
    """Seconds a client has to send a request's headers; then the connection is closed."""
    body_timeout: float = Field(default=30.0, gt=0, le=3600, validation_alias="RAGBOT_BODY_TIMEOUT")
    """Seconds a client has to send a request's body after its headers; then 408 and closed."""
    max_connections_per_client: int = Field(
        default=256, ge=0, le=1_000_000, validation_alias="RAGBOT_MAX_CONNECTIONS_PER_CLIENT"
    )
    """Open connections one client (IPv4 address, IPv6 /64) may hold; 0: no cap (behind a proxy that
    already caps, since every connection then comes from the proxy's address)."""
    frame_ancestors: str = Field(
        default="'self'",
        description="who may embed the web chat page in a frame: CSP sources, e.g. 'self' https://intranet.contoso.com",
        validation_alias="RAGBOT_FRAME_ANCESTORS",
    )
    welcome_questions: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="RAGBOT_WELCOME_QUESTIONS",
        description="the welcome's suggestions; empty: the most central titles of the local index",
    )

    handoff_webhook: SecretStr | None = Field(
        default=None,
        validation_alias="RAGBOT_HANDOFF_WEBHOOK",
        description="where hand-offs are POSTed: a Teams Workflows URL or any webhook taking JSON",
    )
    handoff_webhook_format: Literal["auto", "json", "teams"] = Field(
        default="auto",
        validation_alias="RAGBOT_HANDOFF_WEBHOOK_FORMAT",
        description="teams: the Adaptive Card message a Teams Workflow takes; json: ragbot's own; "
        "auto: teams for Workflows URLs (logic.azure.com, powerplatform.com), else json",
    )
    handoff_timeout: float = Field(default=15.0, gt=0, le=300, validation_alias="RAGBOT_HANDOFF_TIMEOUT")
    """Seconds a hand-off may take: a third for the chat model's summary (then the extractive one), the
    rest for posting to the webhook, retries and Retry-After waits included. The user waits for it."""

    @field_validator("allowed_tenants", "welcome_questions", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            sep = "|" if "|" in value else ","
            return [part.strip() for part in value.split(sep) if part.strip()]
        return value

    @field_validator("handoff_webhook")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not re.match(r"^https?://[^\s/?#]+", value.get_secret_value()):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("frame_ancestors")
    @classmethod
    def _csp_sources(cls, value: str) -> str:
        sources = value.replace(",", " ").split()
        if not sources or not all(CSP_SOURCE.fullmatch(source) for source in sources):
            raise ValueError(
                "must be Content-Security-Policy sources separated by spaces, such as "
                "'self' https://intranet.contoso.com https://*.sharepoint.com ('none': nobody)"
            )
        return " ".join(sources)

    @model_validator(mode="after")
    def _agents_names(self) -> BotSettings:
        """With `RAGBOT_BOT_HOST=agents` the Agents SDK's names count too; where both name a value
        they must agree (a half-migrated configuration must not pick one silently)."""
        if self.bot_host != "agents":
            return self
        pairs = (
            ("app_id", "MicrosoftAppId", self.agents_client_id, "CLIENTID"),
            (
                "app_password",
                "MicrosoftAppPassword",
                self.agents_client_secret.get_secret_value(),
                "CLIENTSECRET",
            ),
            ("app_tenant_id", "MicrosoftAppTenantId", self.agents_tenant_id, "TENANTID"),
        )
        for field, ours, theirs, name in pairs:
            value = getattr(self, field)
            current = value.get_secret_value() if isinstance(value, SecretStr) else value
            if current and theirs and current != theirs:
                raise ValueError(f"{ours} and {AGENTS_CONNECTION}{name} are both set and disagree: set one")
            if theirs and not current:
                setattr(self, field, SecretStr(theirs) if isinstance(value, SecretStr) else theirs)
        if self.agents_auth_type:
            auth_type = AGENTS_AUTH_TYPES.get(self.agents_auth_type.lower())
            if auth_type is None:
                raise ValueError(
                    f"{AGENTS_CONNECTION}AUTHTYPE={self.agents_auth_type!r} is not supported here "
                    f"(use one of {', '.join(AGENTS_AUTH_TYPES.values())})"
                )
            if auth_type == "UserManagedIdentity":
                implied: AppType = "UserAssignedMSI"
            elif self.app_tenant_id.lower() in MULTI_TENANT_TENANTS:
                implied = "MultiTenant"
            else:
                implied = "SingleTenant"
            if "app_type" in self.model_fields_set and self.app_type != implied:
                raise ValueError(
                    f"MicrosoftAppType={self.app_type} and {AGENTS_CONNECTION}AUTHTYPE="
                    f"{self.agents_auth_type} (tenant {self.app_tenant_id or 'none'}) disagree: set one"
                )
            self.app_type = implied
        return self

    @property
    def inbound_tenant_id(self) -> str:
        """The tenant whose own Entra tokens are accepted (single-tenant and managed identity)."""
        if self.app_type == "MultiTenant" or self.app_tenant_id.lower() in MULTI_TENANT_TENANTS:
            return ""
        return self.app_tenant_id

    @property
    def auth_enabled(self) -> bool:
        """Inbound JWT validation is on exactly when an app id is configured (Bot Framework's rule)."""
        return bool(self.app_id)
