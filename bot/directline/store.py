"""In-memory conversations of the local Direct Line: an activity log per conversation bounded in count
and in bytes, a byte budget over all of them, watermarks, live subscribers (WebSocket streams), idle
expiry, and caps on the number of conversations, in all and per client.

Eviction cannot be driven by one client: a client at its cap gives up its own least recently active
conversation; a full store takes one from the client holding the most, and never another client's
only conversation while it is in use (then the start is refused instead).

Activities are kept as their JSON text, encoded once: what a client is sent is built by joining them,
and the bytes counted are the bytes held. Over a budget the oldest activities go first: of the
conversation itself, or, over the total, of the conversation that holds the most. A conversation always
keeps its newest activity.

Watermark = sequence number of the last stored activity. Dropping activities never changes a watermark:
a client asking from a watermark whose activities were dropped gets those that remain after it. A
replaced activity (same id stored again) leaves the log and re-enters it at the end, so every client
sees the newest version once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from bot import json_text

Activity = dict[str, Any]

MAX_ACTIVITIES = 500
MAX_CONVERSATIONS = 1000
MAX_PER_CLIENT = 50
IN_USE_S = 5 * 60
"""A conversation with a live stream, or touched this recently, is in use."""
CONVERSATION_BYTES = 1024**2
TOTAL_BYTES = 64 * 1024**2
IDLE_TIMEOUT_S = 30 * 60
SUBSCRIBER_QUEUE = 100
MAX_SUBSCRIBERS = 4
"""Live streams per conversation (Web Chat keeps one; a reconnect briefly makes two)."""
RECLAIM_TO = 7 / 8
"""Over the total budget, activities are dropped until this share of it is held, not just one."""


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def frame(activities: list[str], watermark: int) -> str:
    """`{"activities": [...], "watermark": "N"}` from activities already in JSON."""
    return f'{{"activities":[{",".join(activities)}],"watermark":"{watermark}"}}'


class Entry(NamedTuple):
    seq: int
    id: str
    json: str
    size: int


class Budget:
    """Bytes held by the activity logs of one store. `reclaim` runs when they exceed `total_bytes`."""

    def __init__(self, conversation_bytes: int, total_bytes: int) -> None:
        self.conversation_bytes = conversation_bytes
        self.total_bytes = total_bytes
        self.held = 0
        self.reclaim: Callable[[], None] = lambda: None

    def charge(self, size: int) -> None:
        self.held += size
        if self.held > self.total_bytes:
            self.reclaim()


class Subscriber:
    """One live stream, its queue bounded in frames and in bytes. `closed` is set when it fell behind or
    its conversation ended; the client then reconnects with its watermark and gets what it missed."""

    def __init__(self, max_bytes: int) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.closed = False

    def push(self, text: str) -> None:
        if self.closed:
            return
        if self.queued_bytes + len(text) > self.max_bytes:
            self.close()
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.close()
            return
        self.queued_bytes += len(text)

    async def next(self) -> str | None:
        """The next frame to send, or None when the stream should close."""
        text = await self.queue.get()
        if text is not None:
            self.queued_bytes -= len(text)
        return text

    def close(self) -> None:
        self.closed = True
        while not self.queue.empty():  # make room for the wake-up
            self.queue.get_nowait()
        self.queued_bytes = 0
        self.queue.put_nowait(None)


class StoreFull(Exception):
    """Every conversation that could make room belongs to another client and is in use."""


class Conversation:
    def __init__(
        self,
        conversation_id: str,
        user_id: str,
        user_name: str | None,
        now: float,
        budget: Budget,
        client: str = "",
    ) -> None:
        self.id = conversation_id
        self.user_id = user_id
        self.user_name = user_name
        self.client = client
        self.last_active = now
        self.watermark = 0
        self.bytes = 0
        self.closed = False
        self._budget = budget
        self._ids = 0
        self._log: deque[Entry] = deque()
        self.subscribers: dict[Subscriber, None] = {}  # insertion-ordered: the oldest stream first
        self.lock = asyncio.Lock()  # delivers this conversation's activities to the bot one at a time
        self.pending = 0

    def new_id(self) -> str:
        self._ids += 1
        return f"{self.id}|{self._ids:07d}"

    def append(self, activity: Activity) -> str:
        """Store `activity` (keeping a supplied id, replacing an older activity with that id) and push it.

        Once the conversation has ended (expired or evicted), nothing is stored: a turn that was still
        running when it went has nobody left to read its replies."""
        activity_id = str(activity.get("id") or self.new_id())
        activity["id"] = activity_id
        activity["timestamp"] = utc_timestamp()
        if self.closed:
            return activity_id
        for index, stored in enumerate(self._log):
            if stored.id == activity_id:
                del self._log[index]
                self._release(stored.size)
                break
        text = json_text.dumps(activity)
        self.watermark += 1
        entry = Entry(self.watermark, activity_id, text, sys.getsizeof(text))
        self._log.append(entry)
        self.bytes += entry.size
        self._publish(frame([text], self.watermark))
        while len(self._log) > 1 and (
            len(self._log) > MAX_ACTIVITIES or self.bytes > self._budget.conversation_bytes
        ):
            self.drop_oldest()
        self._budget.charge(entry.size)
        return activity_id

    def push_ephemeral(self, activity: Activity) -> str:
        """Push without storing: typing activities (as in Direct Line, polling clients never see them)."""
        activity_id = str(activity.get("id") or self.new_id())
        activity["id"] = activity_id
        activity["timestamp"] = utc_timestamp()
        self._publish(frame([json_text.dumps(activity)], self.watermark))
        return activity_id

    def drop_oldest(self) -> bool:
        """Drop the oldest activity unless it is the only one; False when nothing was dropped."""
        if len(self._log) <= 1:
            return False
        self._release(self._log.popleft().size)
        return True

    def page(self, watermark: int | None) -> str:
        """What a client gets for `watermark`: the activities stored after it, and the watermark now."""
        return frame(self.since(watermark), self.watermark)

    def since(self, watermark: int | None) -> list[str]:
        start = watermark or 0
        return [entry.json for entry in self._log if entry.seq > start]

    def subscribe(self, watermark: int | None) -> Subscriber:
        """A new live stream, first sent the backlog after `watermark` (taken with no await between).

        Beyond `MAX_SUBSCRIBERS`, the oldest stream is closed."""
        subscriber = Subscriber(2 * self._budget.conversation_bytes)
        if backlog := self.since(watermark):
            subscriber.push(frame(backlog, self.watermark))
        self.subscribers[subscriber] = None
        while len(self.subscribers) > MAX_SUBSCRIBERS:
            oldest = next(iter(self.subscribers))
            oldest.close()
            del self.subscribers[oldest]
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.pop(subscriber, None)

    def close(self) -> None:
        """End the conversation: streams told to close, its bytes given back to the budget."""
        self.closed = True
        for subscriber in self.subscribers:
            subscriber.close()
        self.subscribers.clear()
        self._log.clear()
        self._release(self.bytes)

    def _release(self, size: int) -> None:
        self.bytes -= size
        self._budget.held -= size

    def _publish(self, text: str) -> None:
        for subscriber in list(self.subscribers):
            subscriber.push(text)
            if subscriber.closed:
                del self.subscribers[subscriber]

    def __len__(self) -> int:
        return len(self._log)


class ConversationStore:
    """At most `max_conversations` (`max_per_client` per client); idle ones expire; the activity logs
    together hold at most about `total_bytes` (each at most `conversation_bytes`)."""

    def __init__(
        self,
        max_conversations: int = MAX_CONVERSATIONS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_per_client: int = MAX_PER_CLIENT,
        conversation_bytes: int = CONVERSATION_BYTES,
        total_bytes: int = TOTAL_BYTES,
    ) -> None:
        self.max_conversations = max_conversations
        self.max_per_client = max_per_client
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self.budget = Budget(conversation_bytes, total_bytes)
        self.budget.reclaim = self._reclaim
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()
        self._clients: dict[str, OrderedDict[str, Conversation]] = {}
        """Each client's conversations, least recently active first."""

    def create(
        self, conversation_id: str, user_id: str, user_name: str | None, client: str = ""
    ) -> Conversation:
        """A new conversation of `client`, making room first; StoreFull when no room may be made."""
        self.expire()
        own = self._clients.get(client)
        if own is not None and len(own) >= self.max_per_client:
            self._remove(next(iter(own)))
        while len(self._conversations) >= self.max_conversations:
            self._remove(self._victim(client).id)
        conversation = Conversation(conversation_id, user_id, user_name, self.clock(), self.budget, client)
        self._conversations[conversation_id] = conversation
        self._clients.setdefault(client, OrderedDict())[conversation_id] = conversation
        return conversation

    def _victim(self, client: str) -> Conversation:
        """The least recently active conversation of the client holding the most (the asking client
        first on a tie); another client's only conversation only when it is not in use."""
        holder, held = max(
            self._clients.items(),
            key=lambda item: (len(item[1]), item[0] == client, -next(iter(item[1].values())).last_active),
        )
        oldest = next(iter(held.values()))
        in_use = bool(oldest.subscribers) or self.clock() - oldest.last_active < IN_USE_S
        if holder != client and len(held) == 1 and in_use:
            raise StoreFull("every conversation is in use")
        return oldest

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
        self._clients[conversation.client].move_to_end(conversation_id)
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
        self._clients.clear()

    def _reclaim(self) -> None:
        """Over the total: the heaviest conversation gives up its oldest activities, one at a time."""
        target = self.budget.total_bytes * RECLAIM_TO
        while self.budget.held > target:
            heaviest = max(
                (conversation for conversation in self._conversations.values() if len(conversation) > 1),
                key=lambda conversation: conversation.bytes,
                default=None,
            )
            if heaviest is None:
                return  # every conversation is down to its newest activity
            heaviest.drop_oldest()

    def _remove(self, conversation_id: str) -> None:
        conversation = self._conversations.pop(conversation_id, None)
        if conversation is None:
            return
        conversation.close()
        own = self._clients[conversation.client]
        del own[conversation_id]
        if not own:
            del self._clients[conversation.client]

    def __len__(self) -> int:
        return len(self._conversations)

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._conversations
