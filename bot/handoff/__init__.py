"""The hand-off: a thread summarized for a person, shown to the user and posted to the help desk.

`handoff` (or "Talk to a person", offered after a refusal or a thumbs-down) summarizes the thread
(`rag.summary`: the chat model when configured, extractive otherwise), POSTs it to
`RAGBOT_HANDOFF_WEBHOOK` when set (a Teams Workflow gets the Adaptive Card message, anything else
ragbot's JSON), and answers with the card and whether it went through. The thread's history is
only read.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.handoff.card import (
    card_attachment,
    handoff_card,
    handoff_text,
    webhook_json,
    workflow_message,
)
from bot.handoff.webhook import Delivery, Webhook, webhook_format
from bot.settings import BotSettings
from rag.summary import Summary, Transcript, extractive_summary, summarize

if TYPE_CHECKING:
    from rag.azure.client import AzureOpenAIClient

log = logging.getLogger(__name__)

HANDOFF_COMMANDS = ("handoff", "hand off", "hand-off", "talk to a person")
OFFER_TITLE = "Talk to a person"
SUMMARY_SHARE = 1 / 3
"""Of `RAGBOT_HANDOFF_TIMEOUT`, what the chat model may take to summarize; the rest is the webhook's."""
NOTHING_ASKED = "The user asked for a person before asking the bot anything."
SENT = "I've passed this conversation to the help desk: a person will get back to you here or by email."
NOT_CONNECTED = (
    "No help desk is connected to me, so I couldn't send this myself. "
    "Please pass this summary on when you contact the help desk."
)


def not_sent(delivery: Delivery) -> str:
    return (
        f"I couldn't reach the help desk just now ({delivery.detail}), so this was not sent. "
        "Your conversation is kept: say **handoff** again in a few minutes."
    )


def status_text(delivery: Delivery | None) -> str:
    if delivery is None:
        return NOT_CONNECTED
    return SENT if delivery.sent else not_sent(delivery)


def _how(buttons: bool) -> str:
    """Buttons name the command too: Teams does not show suggested actions once a chat has streamed
    (microsoft/Agents#308), so the words must work without them."""
    return f"choose **{OFFER_TITLE}** or say **handoff**" if buttons else "mention me with **handoff**"


def refusal_hint(buttons: bool) -> str:
    """The line under a "not in the knowledge base" reply; `buttons`: the channel shows suggested actions."""
    return f"Or {_how(buttons)} and I'll pass this conversation to a person."


def dislike_offer(buttons: bool) -> str:
    return (
        "Sorry that didn't help. Would you like a person to take over? "
        f"{_how(buttons).capitalize()} and I'll pass them a summary of this conversation."
    )


def with_offer(activity: dict[str, Any], buttons: bool) -> dict[str, Any]:
    """`activity` with "Talk to a person" as a suggested action, where the channel shows them."""
    if not buttons:
        return activity
    action = {"type": "imBack", "title": OFFER_TITLE, "value": OFFER_TITLE}
    return {**activity, "suggestedActions": {"actions": [action]}}


class HandOff:
    """Summarizes with the chat model (`client`) or extractively, and posts to the webhook if set."""

    def __init__(self, settings: BotSettings, client: AzureOpenAIClient | None = None) -> None:
        self.app_name = settings.app_name
        self.client = client
        url = settings.handoff_webhook.get_secret_value() if settings.handoff_webhook else None
        self.summary_budget = settings.handoff_timeout * SUMMARY_SHARE
        deadline = settings.handoff_timeout - self.summary_budget
        self.webhook = Webhook(url, deadline=deadline) if url else None
        self.format = webhook_format(url, settings.handoff_webhook_format) if url else "json"

    async def summarize(self, transcript: Transcript) -> Summary:
        """The chat model's summary within its share of the budget, else the extractive one."""
        if transcript.empty:
            return Summary(text=NOTHING_ASKED, method="extractive")
        try:
            async with asyncio.timeout(self.summary_budget):
                return await summarize(transcript, self.client)
        except TimeoutError:
            log.warning(
                "hand-off summary: the chat model took over %.1f s, using the extractive one",
                self.summary_budget,
            )
            text = extractive_summary(transcript)
            return Summary(text=text, method="extractive", note="the chat model took too long")

    def payload(self, summary: Summary, transcript: Transcript, about: dict[str, Any]) -> dict[str, Any]:
        """The webhook's body: the Adaptive Card message for a Teams Workflow, else ragbot's JSON."""
        facts = [(name.replace("_", " ").capitalize(), str(value)) for name, value in about.items() if value]
        card = handoff_card(summary, transcript, facts=facts)
        if self.format == "teams":
            return workflow_message(card)
        return webhook_json(summary, transcript, about, card)

    async def deliver(
        self, summary: Summary, transcript: Transcript, about: dict[str, Any]
    ) -> Delivery | None:
        """Post to the help desk; None when no webhook is configured."""
        if self.webhook is None:
            return None
        stamped = {**about, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        return await self.webhook.post(self.payload(summary, transcript, stamped))

    def reply(
        self, channel_kind: str, summary: Summary, transcript: Transcript, delivery: Delivery | None
    ) -> dict[str, Any]:
        """The user's answer: the status and the card (Teams, Web Chat), or plain text elsewhere."""
        status = status_text(delivery)
        if channel_kind == "plain":
            text = handoff_text(summary, transcript, status=status)
            return {"type": "message", "text": text, "textFormat": "markdown"}
        card = handoff_card(summary, transcript)
        return {
            "type": "message",
            "text": status,
            "textFormat": "markdown",
            "attachments": [card_attachment(card)],
        }

    async def aclose(self) -> None:
        if self.webhook is not None:
            await self.webhook.aclose()
        if self.client is not None:
            await self.client.aclose()
