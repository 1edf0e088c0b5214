"""Where a turn's replies go: to the channel's connector, or into the HTTP response (`expectReplies`)."""

from __future__ import annotations

import itertools
import uuid
from typing import Protocol

from bot.activity import Activity, addressed_reply
from bot.hosts.connector import ChannelConnector

_PREFIX = uuid.uuid4().hex[:12]
_IDS = itertools.count(1)


class Outbox(Protocol):
    buffered: bool
    """True when replies travel back in the HTTP response (no streaming possible)."""

    async def send(self, activity: Activity) -> str | None:
        """Send into the inbound activity's thread; returns the id the channel gave the reply."""
        ...


class ConnectorOutbox:
    buffered = False

    def __init__(self, inbound: Activity, connector: ChannelConnector) -> None:
        self._inbound = inbound
        self._connector = connector

    async def send(self, activity: Activity) -> str | None:
        return await self._connector.send(addressed_reply(self._inbound, activity))


class BufferedOutbox:
    """`deliveryMode: "expectReplies"`: replies are collected and returned as `ExpectedReplies`."""

    buffered = True

    def __init__(self, inbound: Activity) -> None:
        self._inbound = inbound
        self.activities: list[Activity] = []

    async def send(self, activity: Activity) -> str | None:
        reply = {**addressed_reply(self._inbound, activity), "id": f"{_PREFIX}-{next(_IDS)}"}
        self.activities.append(reply)
        return str(reply["id"])
