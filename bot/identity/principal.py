"""Who asks, as far as something the bot trusts vouches for it.

- Teams: `from.aadObjectId` of an activity whose token was validated (auth on), in its own tenant.
- Web Chat through Azure Direct Line: the user id the bot's token endpoint bound into the Direct Line token
  (`dl_<object id>.<mac>`), made from App Service authentication's headers; Direct Line keeps the token's
  user id on every activity, and the mac proves the id came from this bot's token endpoint.
- The local Direct Line: the object id in its own signed token (same headers, behind a proxy).

Everything else in an activity (channelData, entities, text, a Direct Line client's `from`) is the
client's word and never names anyone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.activity import Activity, tenant_of

OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
"""Entra object ids are GUIDs; anything else never reaches a Graph URL."""
AAD_CHANNELS = ("msteams",)
"""Channels that fill `from.aadObjectId` themselves (the client cannot)."""
DIRECT_LINE_CHANNEL = "directline"
MAX_PRINCIPAL_HEADER = 16 * 1024
OID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
TID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/tenantid", "tid")
BOUND_USER = re.compile(r"^dl_(?P<oid>[0-9a-f-]{36})\.(?P<mac>[A-Za-z0-9_-]{22})$")


@dataclass(frozen=True)
class Principal:
    """An Entra user (object id) in a tenant ('' when the source does not say)."""

    object_id: str
    tenant_id: str = ""


def principal(object_id: object, tenant_id: object = "") -> Principal | None:
    if not isinstance(object_id, str) or not OBJECT_ID.fullmatch(object_id):
        return None
    return Principal(object_id.lower(), tenant_id.lower() if isinstance(tenant_id, str) else "")


class UserBinding:
    """Direct Line user ids that carry an object id and a mac over it (keyed by a server-side secret)."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"ragbot direct line user binding", hashlib.sha256).digest()

    def _mac(self, object_id: str) -> str:
        digest = hmac.new(self._key, object_id.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def bind(self, who: Principal) -> str:
        return f"dl_{who.object_id}.{self._mac(who.object_id)}"

    def verify(self, user_id: str) -> str | None:
        """The object id a bound user id carries, or None (not bound, or not by this bot)."""
        match = BOUND_USER.fullmatch(user_id)
        if match is None or not hmac.compare_digest(match["mac"], self._mac(match["oid"])):
            return None
        return match["oid"]


def from_activity(activity: Activity, binding: UserBinding | None) -> Principal | None:
    """The asker of an activity whose token was validated; None when the channel names no Entra user."""
    user = activity.get("from") or {}
    channel = activity.get("channelId")
    if channel in AAD_CHANNELS:
        return principal(user.get("aadObjectId"), tenant_of(activity) or "")
    if channel == DIRECT_LINE_CHANNEL and binding is not None:
        return principal(binding.verify(str(user.get("id") or "")))
    return None


def from_headers(headers: Mapping[str, str]) -> Principal | None:
    """App Service authentication's signed-in Entra user (`X-MS-CLIENT-PRINCIPAL-ID` and the base64 JSON
    `X-MS-CLIENT-PRINCIPAL`, whose `oid` claim must agree and whose `tid` names the tenant); None for
    anyone else (no headers, another identity provider, malformed)."""
    object_id = headers.get("X-MS-CLIENT-PRINCIPAL-ID", "")
    encoded = headers.get("X-MS-CLIENT-PRINCIPAL", "")
    idp = headers.get("X-MS-CLIENT-PRINCIPAL-IDP", "aad")
    if not object_id or not encoded or len(encoded) > MAX_PRINCIPAL_HEADER or idp.lower() != "aad":
        return None
    try:
        decoded = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=False))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("claims"), list):
        return None
    if str(decoded.get("auth_typ") or "aad").lower() != "aad":
        return None
    claims: dict[str, str] = {}
    for claim in decoded["claims"]:
        if (
            isinstance(claim, dict)
            and isinstance(claim.get("typ"), str)
            and isinstance(claim.get("val"), str)
        ):
            claims.setdefault(claim["typ"], claim["val"])
    oid = next((claims[name] for name in OID_CLAIMS if name in claims), object_id)
    tid = next((claims[name] for name in TID_CLAIMS if name in claims), "")
    if oid.lower() != object_id.lower() or not tid:
        return None
    return principal(object_id, tid)
