"""Who asks: the asker's Entra object id (from a source the bot trusts) and groups (Microsoft Graph).

The turn logic asks :class:`Identities` for the :class:`~rag.contract.Asker` of each question. When the
groups cannot be read (Graph down, throttled past the turn, the app lacks the permission) it raises
GroupsUnavailable and the turn fails closed: no answer, a specific reply, the history as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential

from bot.activity import Activity, tenant_of
from bot.identity.cache import CachedGroups
from bot.identity.errors import GroupsUnavailable
from bot.identity.graph import GraphGroups
from bot.identity.principal import Principal, UserBinding, from_activity, from_headers, principal
from bot.identity.settings import IdentitySettings
from bot.settings import MULTI_TENANT_TENANTS, BotSettings
from rag.contract import Asker
from rag.errors import ConfigError

__all__ = [
    "ACCESS_UNKNOWN",
    "GroupsUnavailable",
    "Identities",
    "IdentitySettings",
    "Principal",
    "build_identities",
    "describe",
    "from_headers",
    "graph_groups",
    "principal",
    "warn_dev_groups",
]

log = logging.getLogger(__name__)

ACCESS_UNKNOWN = (
    "I can't check your access right now: some documents are only for certain people, so I won't answer "
    "until I know which ones you may see. Please try again in a few minutes."
)
LOOKUP_READS = 4
"""A turn waits at most this many Graph read deadlines for its asker's groups (token, pages, retries)."""
DEV_GROUPS_WARNING = (
    "RAGBOT_DEV_USER_GROUPS IS SET: every asker counts as a member of %s and sees the documents restricted "
    "to them. For trying restricted documents on your own machine only."
)


class Identities:
    """Turns an activity (and what its transport vouches for) into the Asker the answer backends trim by."""

    def __init__(
        self,
        *,
        groups: CachedGroups | None = None,
        tenant_id: str = "",
        trust_activities: bool = False,
        binding: UserBinding | None = None,
        trust_principal_headers: bool = False,
        dev_groups: Sequence[str] = (),
    ) -> None:
        self.groups = groups
        self.tenant_id = tenant_id.lower()
        self.trust_activities = trust_activities
        self.binding = binding
        self.trust_principal_headers = trust_principal_headers
        self.dev_groups = list(dev_groups)

    def principal(self, activity: Activity, vouched: Principal | None = None) -> Principal | None:
        """The asker's Entra identity: what the transport vouched for (the local Direct Line's token),
        else, when inbound auth validated the activity, what the channel says; never the client's word."""
        who = vouched
        if who is None and self.trust_activities:
            who = from_activity(activity, self.binding)
        if who is not None and self.tenant_id and who.tenant_id not in ("", self.tenant_id):
            return None  # another organisation's object id names nobody in this directory
        return who

    def from_headers(self, headers: Mapping[str, str]) -> Principal | None:
        """The signed-in user of a web chat token request, when App Service authentication is trusted."""
        if not self.trust_principal_headers:
            return None
        who = from_headers(headers)
        if who is not None and self.tenant_id and who.tenant_id != self.tenant_id:
            log.info("web chat: a signed-in user of tenant %s is treated as anonymous", who.tenant_id)
            return None
        return who

    def user_id(self, activity: Activity) -> str:
        """Who to name in records (feedback, refusals, hand-offs): the validated object id, else the
        channel's user id; a Direct Line client's `aadObjectId` names nobody. With inbound auth off
        nothing is validated, so the records keep what the channel says."""
        user = activity["from"]
        if not self.trust_activities:
            return str(user.get("aadObjectId") or user["id"])
        who = self.principal(activity)
        return who.object_id if who else str(user["id"])

    async def asker(self, activity: Activity, who: Principal | None) -> Asker:
        """Raises GroupsUnavailable when `who`'s groups should be known but cannot be read."""
        groups = list(self.dev_groups)
        if who is not None and self.groups is not None:
            groups.extend(await self.groups.groups(who.object_id))
        return Asker(
            user_id=(activity.get("from") or {}).get("id"),
            tenant_id=tenant_of(activity),
            aad_object_id=who.object_id if who else None,
            groups=list(dict.fromkeys(groups)),
        )

    async def aclose(self) -> None:
        if self.groups is not None:
            await self.groups.aclose()


def looks_up_groups(identity: IdentitySettings, bot: BotSettings, *, groups_column: bool) -> bool:
    """Whether askers' groups are read from Graph: asked for (`graph`, or `auto` with a groups field) and
    someone can be identified at all (inbound auth on, or App Service authentication trusted)."""
    wanted = identity.group_lookup == "graph" or (identity.group_lookup == "auto" and groups_column)
    return wanted and (bot.auth_enabled or identity.trust_principal_headers)


def describe(identity: IdentitySettings, bot: BotSettings, *, groups_column: bool) -> str:
    """One line for `ragbot config` and `ragbot serve`: who can be identified, and where groups come from."""
    if identity.dev_user_groups and not bot.auth_enabled:
        groups = ", ".join(identity.dev_user_groups)
        return f"every asker is in {groups} (RAGBOT_DEV_USER_GROUPS, local use only)"
    sources = []
    if bot.auth_enabled:
        sources.append("Teams users (validated activities)")
    if identity.trust_principal_headers:
        sources.append("web chat users signed in by App Service authentication")
    if not sources:
        return "everyone is anonymous (inbound auth off, App Service authentication not trusted)"
    if looks_up_groups(identity, bot, groups_column=groups_column):
        groups = f"their groups from Microsoft Graph ({identity.graph_endpoint})"
    else:
        groups = f"no groups read (RAGBOT_GROUP_LOOKUP={identity.group_lookup})"
    return f"{' and '.join(sources)}; {groups}; anyone else is anonymous"


def graph_tenant(identity: IdentitySettings, bot: BotSettings) -> str:
    tenant = identity.graph_tenant_id or bot.app_tenant_id
    if tenant.lower() in MULTI_TENANT_TENANTS:
        raise ConfigError(
            "reading groups from Microsoft Graph needs the directory's tenant id: set MicrosoftAppTenantId "
            "or RAGBOT_GRAPH_TENANT_ID"
        )
    return tenant


def graph_credential(identity: IdentitySettings, bot: BotSettings, **transport: Any) -> AsyncTokenCredential:
    """An app-only credential: managed identity, a certificate or a client secret; the bot's own app
    registration unless RAGBOT_GRAPH_* say otherwise. `transport` goes to azure-identity (tests)."""
    from azure.identity.aio import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential

    client_id = identity.graph_client_id or bot.app_id
    if identity.graph_managed_identity or (
        bot.app_type == "UserAssignedMSI" and not identity.graph_client_id
    ):
        return ManagedIdentityCredential(client_id=client_id or None, **transport)
    tenant = graph_tenant(identity, bot)
    if not client_id:
        raise ConfigError(
            "reading groups from Microsoft Graph needs MicrosoftAppId or RAGBOT_GRAPH_CLIENT_ID"
        )
    if identity.graph_certificate_path is not None:
        if not identity.graph_certificate_path.is_file():
            raise ConfigError(
                f"RAGBOT_GRAPH_CERTIFICATE_PATH: no such file {identity.graph_certificate_path}"
            )
        return CertificateCredential(
            tenant,
            client_id,
            certificate_path=str(identity.graph_certificate_path),
            authority=identity.graph_authority,
            **transport,
        )
    secret = identity.graph_client_secret.get_secret_value() or bot.app_password.get_secret_value()
    if not secret:
        raise ConfigError(
            "reading groups from Microsoft Graph needs a credential: MicrosoftAppPassword, "
            "RAGBOT_GRAPH_CLIENT_SECRET, RAGBOT_GRAPH_CERTIFICATE_PATH or RAGBOT_GRAPH_MANAGED_IDENTITY=true"
        )
    return ClientSecretCredential(tenant, client_id, secret, authority=identity.graph_authority, **transport)


def graph_groups(identity: IdentitySettings, bot: BotSettings, **transport: Any) -> CachedGroups:
    source = GraphGroups(
        graph_credential(identity, bot, **transport), identity.graph_endpoint, identity.graph_timeout
    )
    return CachedGroups(
        source,
        ttl=identity.groups_cache_seconds,
        max_users=identity.groups_cache_users,
        max_bytes=int(identity.groups_cache_bytes),
        deadline=LOOKUP_READS * identity.graph_timeout,
    )


def build_identities(
    identity: IdentitySettings, bot: BotSettings, *, groups_column: bool, **transport: Any
) -> Identities:
    """`groups_column`: the search index restricts documents by group (AZURE_SEARCH_PERMITTED_GROUPS_COLUMN),
    which is when `RAGBOT_GROUP_LOOKUP=auto` reads groups."""
    if identity.dev_user_groups and bot.auth_enabled:
        raise ConfigError(
            "RAGBOT_DEV_USER_GROUPS is for local use only and MicrosoftAppId is set: unset it (groups then "
            "come from Microsoft Graph, RAGBOT_GROUP_LOOKUP)"
        )
    secret = bot.direct_line_secret.get_secret_value() if bot.direct_line_secret else ""
    tenant = identity.graph_tenant_id or bot.app_tenant_id
    return Identities(
        groups=graph_groups(identity, bot, **transport)
        if looks_up_groups(identity, bot, groups_column=groups_column)
        else None,
        tenant_id="" if tenant.lower() in MULTI_TENANT_TENANTS else tenant,
        trust_activities=bot.auth_enabled,
        binding=UserBinding(secret) if secret else None,
        trust_principal_headers=identity.trust_principal_headers,
        dev_groups=identity.dev_user_groups,
    )


def warn_dev_groups(identities: Identities) -> None:
    if identities.dev_groups:
        log.warning(DEV_GROUPS_WARNING, ", ".join(identities.dev_groups))
