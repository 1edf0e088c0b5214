"""Inbound activity checks and the pure helpers the turn logic needs, on plain Bot Framework JSON.

Nothing here imports botbuilder: the turn logic reads and writes activity dicts, so a second host
(the Microsoft 365 Agents SDK) can drive it unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Activity = dict[str, Any]
"""An activity as it travels on the wire (camelCase Bot Framework JSON)."""

_SPACES = re.compile(r"[ \t]+")


MAX_ID = 1024
"""Ids go into reply URLs (`/v3/conversations/{id}/activities/{replyToId}`); real ones are far shorter."""
MAX_TEXT = 100_000
NO_CONTROLS = r"^[^\x00-\x1f\x7f-\x9f]*$"
"""Ids end up in URLs: a control character (`"\\n"`) makes a URL no channel can route."""


class _Account(BaseModel):
    id: str = Field(min_length=1, max_length=MAX_ID, pattern=NO_CONTROLS)
    name: str | None = None
    aadObjectId: str | None = Field(default=None, max_length=MAX_ID)


class _Conversation(BaseModel):
    id: str = Field(min_length=1, max_length=MAX_ID, pattern=NO_CONTROLS)
    conversationType: str | None = None
    tenantId: str | None = Field(default=None, max_length=MAX_ID)


class InboundActivity(BaseModel):
    """The fields every turn relies on; the body passes on unchanged, so other fields are not copied here."""

    model_config = ConfigDict(populate_by_name=True)
    type: str = Field(min_length=1, max_length=100)
    id: str | None = Field(default=None, max_length=MAX_ID, pattern=NO_CONTROLS)
    channelId: str = Field(min_length=1, max_length=100, pattern=NO_CONTROLS)
    serviceUrl: str = Field(min_length=1, max_length=2048, pattern=r"^https?://[^\s/?#]+")
    conversation: _Conversation
    from_: _Account = Field(alias="from")
    recipient: _Account | None = None
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    name: str | None = None
    replyToId: str | None = Field(default=None, max_length=MAX_ID, pattern=NO_CONTROLS)
    deliveryMode: str | None = None
    locale: str | None = Field(default=None, max_length=100)
    entities: list[dict[str, Any]] | None = None
    channelData: dict[str, Any] | None = None
    membersAdded: list[_Account] | None = None


class BadActivity(ValueError):
    """The body is JSON but not an activity the bot can answer; the message names the field."""


_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def check_activity(body: object, raw: bytes = b"") -> Activity:
    """Validate the fields a turn needs and return the body unchanged (a dict).

    `raw` (the request bytes) lets a lone UTF-16 surrogate (`"\\ud800"`: valid JSON, no valid text)
    be refused here rather than fail later when the text is stored.
    """
    if not isinstance(body, dict):
        raise BadActivity("the body must be a JSON object (an activity)")
    try:
        InboundActivity.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]).replace("from_", "from") or "activity"
        raise BadActivity(f"{where}: {err['msg']}") from None
    if _ESCAPED_SURROGATE.search(raw):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadActivity(
                "the activity holds text that is not valid Unicode (a lone surrogate)"
            ) from None
    return body


def tenant_of(activity: Activity) -> str | None:
    """The asking organisation: `conversation.tenantId`, else Teams' `channelData.tenant.id`."""
    tenant = activity["conversation"].get("tenantId")
    if not tenant:
        tenant = _field(_field(activity.get("channelData"), "tenant"), "id")
    return tenant if isinstance(tenant, str) and tenant else None


def _field(value: object, name: str) -> object:
    """`value[name]` when `value` is an object, else None (channel data is free-form JSON)."""
    return value.get(name) if isinstance(value, dict) else None


def conversation_type(activity: Activity) -> str:
    """`personal`, `groupChat` or `channel` in Teams; `personal` everywhere else."""
    return str(activity["conversation"].get("conversationType") or "personal")


def thread_key(activity: Activity) -> str:
    """Memory key of the thread: channel, tenant and conversation id.

    A Teams channel id carries `;messageid=<root>` for replies in a thread; a top-level post comes
    without it and is keyed by its own activity id, so the replies that follow join its memory.
    """
    conversation_id = activity["conversation"]["id"]
    if (
        activity["channelId"] == "msteams"
        and conversation_type(activity) == "channel"
        and ";messageid=" not in conversation_id
        and activity.get("id")
    ):
        conversation_id = f"{conversation_id};messageid={activity['id']}"
    return f"{activity['channelId']}|{tenant_of(activity) or '-'}|{conversation_id}"


def needs_mention(activity: Activity) -> bool:
    """Teams channels and group chats deliver every message; answer only those that @mention the bot."""
    return activity["channelId"] == "msteams" and conversation_type(activity) in ("channel", "groupChat")


def _own_mentions(activity: Activity) -> list[dict[str, Any]]:
    """Mention entities whose `mentioned.id` is the bot's; malformed ones are simply not mentions."""
    bot_id = (activity.get("recipient") or {}).get("id")
    if not bot_id:
        return []
    return [
        entity
        for entity in activity.get("entities") or []
        if entity.get("type") == "mention" and _field(entity.get("mentioned"), "id") == bot_id
    ]


def mentions_bot(activity: Activity) -> bool:
    return bool(_own_mentions(activity))


def question_text(activity: Activity) -> str:
    """The message text without the bot's own @mention (found by the mention entity, not by name)."""
    text = str(activity.get("text") or "")
    for entity in _own_mentions(activity):
        marker = entity.get("text")
        if isinstance(marker, str) and marker:
            text = text.replace(marker, " ")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.strip().splitlines()).strip()


def addressed_reply(inbound: Activity, outgoing: Activity) -> Activity:
    """`outgoing` addressed into the inbound activity's thread (same conversation id, `replyToId`)."""
    reply: Activity = {
        **outgoing,
        "channelId": inbound["channelId"],
        "serviceUrl": inbound["serviceUrl"],
        "conversation": inbound["conversation"],
        "from": inbound.get("recipient") or {"id": "bot"},
        "recipient": inbound["from"],
    }
    if inbound.get("id"):
        reply["replyToId"] = inbound["id"]
    if inbound.get("locale") and "locale" not in outgoing:
        reply["locale"] = inbound["locale"]
    return reply
