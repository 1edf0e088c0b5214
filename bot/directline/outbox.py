"""Where the bot's replies go in the local Direct Line: straight into the conversation, in-process.

The local Direct Line hands each user activity to the turn handler itself, with this outbox; so there is
no connector route for replies on the server, and nobody outside the process can post as the bot.
"""

from __future__ import annotations

from bot.activity import Activity, addressed_reply
from bot.directline.store import Conversation


class ConversationOutbox:
    """Replies to one inbound activity: stored and pushed like any activity, typing only pushed live."""

    buffered = False

    def __init__(self, inbound: Activity, conversation: Conversation) -> None:
        self._inbound = inbound
        self._conversation = conversation

    async def send(self, activity: Activity) -> str | None:
        """Keeps an id the bot supplies (a stream's final message replaces the stream under it)."""
        reply = addressed_reply(self._inbound, activity)
        reply["from"] = {**reply["from"], "role": "bot"}
        if reply["type"] != "typing":
            return self._conversation.append(reply)
        channel_data = reply.get("channelData")
        if (
            isinstance(channel_data, dict)
            and channel_data.get("streamType")
            and not channel_data.get("streamId")
        ):
            # A stream's first update: its id is the stream id. Web Chat 4.18 sorts updates that lack
            # `streamId` next to any earlier stream's first update, so a second answer would show above
            # the first; naming the stream keeps each answer where it belongs.
            reply["id"] = reply.get("id") or self._conversation.new_id()
            reply["channelData"] = {**channel_data, "streamId": reply["id"]}
        return self._conversation.push_ephemeral(reply)
