"""Inbound Bot Framework tokens, checked with PyJWT against keys from :mod:`bot.hosts.openid`.

The claim rules are botbuilder's (`_ParameterizedBotFrameworkAuthentication` 4.17), kept exactly:

- `Authorization: Bearer <jwt>` (the scheme spelled so, two parts); no header only with auth off;
- skill tokens (bot-to-bot) are refused: botbuilder refuses them without a claims validator;
- an Emulator token (issuer one of the Bot Framework tenants) needs `ver`, and `appid` (v1) or `azp`
  (v2) equal to the app id;
- a channel token needs the channel issuer, `aud` equal to the app id and a `serviceurl` claim equal
  to the activity's serviceUrl;
- signature RS256 by a key of the issuer's metadata, 5 minutes of clock skew, and when the key lists
  endorsements, the activity's channelId among them.

One addition, for single-tenant and managed-identity registrations (what the Agents SDK accepts):
tokens issued by the bot's own Entra tenant (v1 and v2 issuers), with `aud` equal to the app id and
`tid` equal to that tenant, checked against that tenant's keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from bot.hosts.errors import Unauthorized
from bot.hosts.openid import OpenIdCache

CHANNEL_ISSUER = "https://api.botframework.com"
CHANNEL_METADATA_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
EMULATOR_METADATA_URL = "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"
GOV_CHANNEL_ISSUER = "https://api.botframework.us"
GOV_CHANNEL_METADATA_URL = "https://login.botframework.azure.us/v1/.well-known/openidconfiguration"
GOV_EMULATOR_METADATA_URL = "https://login.microsoftonline.us/cab8a31a-1906-4287-a0d8-4eef66b95f6e/v2.0/.well-known/openid-configuration"
TENANT_METADATA_URL = "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
EMULATOR_ISSUERS = (
    "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/",
    "https://login.microsoftonline.com/d6d49420-f39b-4df7-a1dc-d59a935871db/v2.0",
    "https://sts.windows.net/f8cdef31-a31e-4b4a-93e4-5f571e91255a/",
    "https://login.microsoftonline.com/f8cdef31-a31e-4b4a-93e4-5f571e91255a/v2.0",
    "https://sts.windows.net/cab8a31a-1906-4287-a0d8-4eef66b95f6e/",
    "https://login.microsoftonline.us/cab8a31a-1906-4287-a0d8-4eef66b95f6e/v2.0",
)
ANONYMOUS_SKILL_APP_ID = "AnonymousSkill"
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512")
CLOCK_SKEW_S = 300


@dataclass(frozen=True)
class InboundAuth:
    """Who may call the bot, and where their signing keys are published.

    `overrides` takes botbuilder's configuration names (`CHANNEL_SERVICE`,
    `TO_BOT_FROM_CHANNEL_TOKEN_ISSUER`, `TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL`,
    `TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL`) plus `TO_BOT_FROM_TENANT_OPENID_METADATA_URL`.
    """

    app_id: str
    tenant_id: str = ""
    """Set for single-tenant and managed-identity registrations: that tenant's tokens are accepted."""
    channel_issuer: str = CHANNEL_ISSUER
    channel_metadata_url: str = CHANNEL_METADATA_URL
    emulator_metadata_url: str = EMULATOR_METADATA_URL
    tenant_metadata_url: str = ""
    required_endorsements: tuple[str, ...] = field(default=())

    @classmethod
    def configured(cls, app_id: str, tenant_id: str, overrides: Mapping[str, Any]) -> InboundAuth:
        gov = str(overrides.get("CHANNEL_SERVICE") or "").lower() == "https://botframework.azure.us"
        tenant_url = TENANT_METADATA_URL.format(tenant=tenant_id) if tenant_id else ""
        return cls(
            app_id=app_id,
            tenant_id=tenant_id,
            channel_issuer=overrides.get("TO_BOT_FROM_CHANNEL_TOKEN_ISSUER")
            or (GOV_CHANNEL_ISSUER if gov else CHANNEL_ISSUER),
            channel_metadata_url=overrides.get("TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL")
            or (GOV_CHANNEL_METADATA_URL if gov else CHANNEL_METADATA_URL),
            emulator_metadata_url=overrides.get("TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL")
            or (GOV_EMULATOR_METADATA_URL if gov else EMULATOR_METADATA_URL),
            tenant_metadata_url=overrides.get("TO_BOT_FROM_TENANT_OPENID_METADATA_URL") or tenant_url,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.app_id)

    def tenant_issuers(self) -> tuple[str, ...]:
        if not self.tenant_id:
            return ()
        return (
            f"https://sts.windows.net/{self.tenant_id}/",
            f"https://login.microsoftonline.com/{self.tenant_id}/v2.0",
        )

    def metadata_urls(self) -> list[str]:
        """Every metadata URL a valid token may need (fetched ahead at start-up)."""
        urls = [self.channel_metadata_url, self.emulator_metadata_url]
        return [*urls, self.tenant_metadata_url] if self.tenant_metadata_url else urls


def _app_id_of(claims: Mapping[str, Any]) -> Any:
    """botbuilder's `get_app_id_from_claims`: `appid` for v1 tokens, `azp` for v2."""
    version = claims.get("ver")
    if not version or version == "1.0":
        return claims.get("appid")
    if version == "2.0":
        return claims.get("azp")
    return None


def _is_skill(claims: Mapping[str, Any]) -> bool:
    """botbuilder's `SkillValidation.is_skill_claim`."""
    if claims.get("appid") == ANONYMOUS_SKILL_APP_ID:
        return True
    if "ver" not in claims:
        return False
    audience = claims.get("aud")
    if not audience or audience == CHANNEL_ISSUER:
        return False
    app_id = _app_id_of(claims)
    return bool(app_id) and app_id != audience


class TokenValidator:
    """Checks `Authorization` headers against :class:`InboundAuth`; never fetches keys itself."""

    def __init__(self, auth: InboundAuth, keys: OpenIdCache) -> None:
        self.auth = auth
        self._keys = keys

    def prefetch(self) -> None:
        if self.auth.enabled:
            for url in self.auth.metadata_urls():
                self._keys.keys(url).prefetch()

    async def validate(self, header: str, channel_id: str, service_url: str) -> dict[str, Any]:
        """The token's claims ({} with auth off and no header); raises Unauthorized or
        AuthUnavailable (the keys cannot be fetched now: answer 503, not 401)."""
        if not header:
            if self.auth.enabled:
                raise Unauthorized("no Authorization header")
            return {}
        if not self.auth.enabled:
            raise Unauthorized("a token was sent, but no app id is configured to check it against")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token or " " in token:
            raise Unauthorized("the Authorization header is not 'Bearer <token>'")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            headers = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token is not a JWT: {exc}") from None
        if _is_skill(unverified):
            raise Unauthorized("skill (bot-to-bot) tokens are not accepted")
        issuer = unverified.get("iss")
        if issuer in EMULATOR_ISSUERS:
            kind, url = "emulator", self.auth.emulator_metadata_url
        elif issuer in self.auth.tenant_issuers():
            kind, url = "tenant", self.auth.tenant_metadata_url
        elif issuer == self.auth.channel_issuer:
            kind, url = "channel", self.auth.channel_metadata_url
        else:
            raise Unauthorized(f"issuer {str(issuer)[:100]!r} is not accepted")
        kid = headers.get("kid")
        if not isinstance(kid, str) or headers.get("alg") not in ALLOWED_ALGORITHMS:
            raise Unauthorized("the token names no key id or an algorithm that is not allowed")
        key = await self._keys.keys(url).key(kid)
        if key is None:
            raise Unauthorized("the token is signed with an unknown key")
        if key.endorsements:
            for endorsement in (channel_id, *self.auth.required_endorsements):
                if endorsement and endorsement not in key.endorsements:
                    raise Unauthorized(f"the signing key is not endorsed for {endorsement!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=["RS256"],
                leeway=CLOCK_SKEW_S,
                options={"verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token does not verify: {exc}") from None
        if kind == "emulator":
            self._emulator_rules(claims)
        elif kind == "tenant":
            self._tenant_rules(claims)
        else:
            self._channel_rules(claims, service_url)
        return claims

    def _emulator_rules(self, claims: Mapping[str, Any]) -> None:
        if claims.get("ver") is None:
            raise Unauthorized("'ver' claim is required on Emulator tokens")
        if claims["ver"] not in ("", "1.0", "2.0"):
            raise Unauthorized(f"unknown Emulator token version {str(claims['ver'])[:20]!r}")
        if _app_id_of(claims) != self.auth.app_id:
            raise Unauthorized("the token was issued for another app id")

    def _channel_rules(self, claims: Mapping[str, Any], service_url: str) -> None:
        if claims.get("iss") != self.auth.channel_issuer:
            raise Unauthorized("'iss' claim missing")
        if claims.get("aud") != self.auth.app_id:
            raise Unauthorized("the token was issued for another app id")
        if claims.get("serviceurl") != service_url:
            raise Unauthorized("the token's 'serviceurl' claim is not the activity's serviceUrl")

    def _tenant_rules(self, claims: Mapping[str, Any]) -> None:
        if claims.get("aud") != self.auth.app_id:
            raise Unauthorized("the token was issued for another app id")
        if str(claims.get("tid", self.auth.tenant_id)).lower() != self.auth.tenant_id.lower():
            raise Unauthorized("the token's 'tid' is not the bot's tenant")
