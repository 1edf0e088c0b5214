"""In-memory conversations of the local Direct Line: a bounded activity log per conversation,
watermarks, live subscribers (WebSocket streams), idle expiry and a cap on the number of conversations.

Watermark = sequence number of the last stored activity. A replaced activity (same id posted again,
or a PUT) leaves the log and re-enters it at the end, so every client sees the newest version once.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Activity = dict[str, Any]
Frame = dict[str, Any]

MAX_ACTIVITIES = 500
MAX_CONVERSATIONS = 1000
IDLE_TIMEOUT_S = 30 * 60
SUBSCRIBER_QUEUE = 100


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Subscriber:
    """One live stream. `closed` is set when it fell behind or its conversation ended; the client
    then reconnects with its watermark and gets what it missed from the log."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Frame | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.closed = False

    def push(self, frame: Frame) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.close()

    def close(self) -> None:
        self.closed = True
        while not self.queue.empty():  # make room for the wake-up
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class Conversation:
    def __init__(self, conversation_id: str, user_id: str, user_name: str | None, now: float) -> None:
        self.id = conversation_id
        self.user_id = user_id
        self.user_name = user_name
        self.last_active = now
        self.watermark = 0
        self._ids = 0
        self._log: deque[tuple[int, Activity]] = deque(maxlen=MAX_ACTIVITIES)
        self.subscribers: set[Subscriber] = set()
        self.lock = asyncio.Lock()  # delivers this conversation's activities to the bot one at a time
        self.pending = 0

    def new_id(self) -> str:
        self._ids += 1
        return f"{self.id}|{self._ids:07d}"

    def append(self, activity: Activity) -> str:
        """Store `activity` (keeping a supplied id, replacing an older activity with that id) and push it."""
        activity_id = activity.get("id") or self.new_id()
        activity["id"] = activity_id
        activity["timestamp"] = utc_timestamp()
        for index, (_, stored) in enumerate(self._log):
            if stored.get("id") == activity_id:
                del self._log[index]
                break
        self.watermark += 1
        self._log.append((self.watermark, activity))
        self._publish({"activities": [activity], "watermark": str(self.watermark)})
        return str(activity_id)

    def push_ephemeral(self, activity: Activity) -> str:
        """Push without storing: typing activities (as in Direct Line, polling clients never see them)."""
        activity_id = activity.get("id") or self.new_id()
        activity["id"] = activity_id
        activity["timestamp"] = utc_timestamp()
        self._publish({"activities": [activity], "watermark": str(self.watermark)})
        return str(activity_id)

    def since(self, watermark: int | None) -> list[Activity]:
        start = watermark or 0
        return [activity for seq, activity in self._log if seq > start]

    def subscribe(self, watermark: int | None) -> tuple[Subscriber, list[Activity]]:
        """A new live stream and the backlog after `watermark`, taken atomically (no await between)."""
        subscriber = Subscriber()
        self.subscribers.add(subscriber)
        return subscriber, self.since(watermark)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def close(self) -> None:
        for subscriber in list(self.subscribers):
            subscriber.close()
        self.subscribers.clear()

    def _publish(self, frame: Frame) -> None:
        for subscriber in list(self.subscribers):
            subscriber.push(frame)
            if subscriber.closed:
                self.subscribers.discard(subscriber)

    def __len__(self) -> int:
        return len(self._log)


class ConversationStore:
    """At most `max_conversations`, least recently active evicted first; idle ones expire."""

    def __init__(
        self,
        max_conversations: int = MAX_CONVERSATIONS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_conversations = max_conversations
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()

    def create(self, conversation_id: str, user_id: str, user_name: str | None) -> Conversation:
        self.expire()
        while len(self._conversations) >= self.max_conversations:
            _, oldest = self._conversations.popitem(last=False)
            oldest.close()
        conversation = Conversation(conversation_id, user_id, user_name, self.clock())
        self._conversations[conversation_id] = conversation
        return conversation

    def get(self, conversation_id: str) -> Conversation | None:
        """The live conversation, marked active; None if unknown or expired."""
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            return None
        now = self.clock()
        if now - conversation.last_active > self.idle_timeout_s:
            self._remove(conversation_id)
            return None
        conversation.last_active = now
        self._conversations.move_to_end(conversation_id)
        return conversation

    def expire(self) -> int:
        """Drop conversations idle longer than the timeout; returns how many went."""
        cutoff = self.clock() - self.idle_timeout_s
        idle = [cid for cid, conv in self._conversations.items() if conv.last_active < cutoff]
        for conversation_id in idle:
            self._remove(conversation_id)
        return len(idle)

    def close(self) -> None:
        for conversation in self._conversations.values():
            conversation.close()
        self._conversations.clear()

    def _remove(self, conversation_id: str) -> None:
        conversation = self._conversations.pop(conversation_id, None)
        if conversation is not None:
            conversation.close()

    def __len__(self) -> int:
        return len(self._conversations)

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._conversations
