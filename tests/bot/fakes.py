"""Loopback fakes for driving the real bot app: a Bot Connector that records replies, a scripted
answer backend, and builders for the activities Teams, Web Chat and the Emulator send.

Reusable by other suites (benchmarks, reliability tests): nothing here patches the app.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from rag.contract import Answer, AnswerDelta, Asker, Citation, Turn

BOT_ID = "28:bot-app-id"
BOT_NAME = "Help Desk (beta)+"
TENANT = "tenant-1"


@dataclass
class Received:
    """One activity the bot posted: where it went and when it arrived."""

    conversation_id: str
    reply_to_id: str | None
    activity: dict[str, Any]
    at: float
    authorization: str | None
    status: int
    returned_id: str | None
    traceparent: str | None = None

    @property
    def type(self) -> str:
        return str(self.activity.get("type"))

    @property
    def text(self) -> str:
        return str(self.activity.get("text") or "")

    @property
    def stream(self) -> dict[str, Any] | None:
        for entity in self.activity.get("entities") or []:
            if entity.get("type") == "streaminfo":
                return dict(entity)
        return None


class FakeConnector:
    """Plays the channel's connector (`serviceUrl`): records posts and answers `{"id": ...}`.

    `forbid_stream_after=N` answers 403 to every stream request after the first N (as Teams does
    after the user pressed Stop); `fail_status` answers every post with that status.
    `stream_faults[n] = (status, retry_after)` answers the n-th stream request so (429 throttling,
    5xx); `final_faults` answers the next final messages so, one entry each.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.forbid_stream_after: int | None = None
        self.fail_status: int | None = None
        self.stream_faults: dict[int, tuple[int, str | None]] = {}
        self.final_faults: list[tuple[int, str | None]] = []
        self.delay = 0.0
        self._ids = itertools.count(1)
        self._stream_requests = 0
        self._arrived = asyncio.Event()
        self.app = web.Application()
        # one route read from the raw path: ids may hold an encoded "/" (%2F), which routing would decode
        self.app.router.add_post("/v3/conversations/{tail:.+}", self._post)

    async def _post(self, request: web.Request) -> web.Response:
        parts = request.raw_path.split("?")[0].split("/")  # "", v3, conversations, id, activities[, reply]
        if len(parts) not in (5, 6) or parts[4] != "activities":
            return web.json_response({"error": "no such route"}, status=404)
        conversation, reply_to = parts[3], (parts[5] if len(parts) == 6 else None)
        activity = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        body: dict[str, Any] = {"id": f"bot-{next(self._ids)}"}
        status = 201
        if activity.get("id"):
            body = {"id": activity["id"]}
        headers: dict[str, str] = {}
        is_stream = any(e.get("type") == "streaminfo" for e in activity.get("entities") or [])
        if is_stream:
            self._stream_requests += 1
            fault = self.stream_faults.get(self._stream_requests)
            if activity.get("type") == "message" and self.final_faults:
                fault = self.final_faults.pop(0)
            if self.forbid_stream_after is not None and self._stream_requests > self.forbid_stream_after:
                status, body = 403, {"error": {"code": "ContentStreamNotAllowed"}}
            elif fault is not None:
                status, body = (
                    fault[0],
                    {"error": {"code": "Throttled", "message": "API calls quota exceeded"}},
                )
                if fault[1] is not None:
                    headers["Retry-After"] = fault[1]
            elif any(e.get("streamId") for e in activity.get("entities") or []):
                status, body = 202, {}
        if self.fail_status:
            status, body = self.fail_status, {"error": "failing on purpose"}
        self.received.append(
            Received(
                conversation_id=unquote(conversation),
                reply_to_id=unquote(reply_to) if reply_to else None,
                activity=activity,
                at=time.monotonic(),
                authorization=request.headers.get("Authorization"),
                status=status,
                returned_id=body.get("id"),
                traceparent=request.headers.get("traceparent"),
            )
        )
        self._arrived.set()
        return web.json_response(body, status=status, headers=headers)

    def in_conversation(self, conversation_id: str, kind: str | None = None) -> list[Received]:
        return [
            r
            for r in self.received
            if r.conversation_id == conversation_id and (kind is None or r.type == kind)
        ]

    def messages(self, conversation_id: str) -> list[Received]:
        return self.in_conversation(conversation_id, "message")

    async def wait_for(self, predicate: Callable[[list[Received]], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not predicate(self.received):
                self._arrived.clear()
                await self._arrived.wait()


Script = Callable[[str, Sequence[Turn]], Answer | Exception]


def cited_answer(question: str, history: Sequence[Turn] = ()) -> Answer:
    """A grounded answer citing two documents, the way every backend returns it."""
    return Answer(
        content=f"About {question}: use the portal [doc1]. Then restart [doc2].",
        citations=[
            Citation(
                content="The portal is at https://portal.example.", title="Portal guide", url="https://kb/p"
            ),
            Citation(content="Restart after changes.", title="Restart notes", filepath="it/restart.md"),
        ],
        intent=[f"{question} how to"],
    )


@dataclass
class Call:
    question: str
    history: list[Turn]
    user: Asker | None


@dataclass
class FakeAnswerer:
    """A scripted answer backend: `script(question, history)` gives the Answer (or the error to raise).

    `stream()` yields the citations and intent first, then the content in `pieces` parts
    `piece_delay` seconds apart; `delay` is waited before answering (both paths).
    """

    script: Script = cited_answer
    delay: float = 0.0
    pieces: int = 6
    piece_delay: float = 0.0
    not_ready: str | None = None
    name: str = "fake"
    calls: list[Call] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)
    """Extra delay per question (to make one thread slow)."""

    async def _answer(self, history: Sequence[Turn], question: str, user: Asker | None) -> Answer:
        self.calls.append(Call(question, list(history), user))
        await asyncio.sleep(self.delay + self.delays.get(question, 0.0))
        result = self.script(question, history)
        if isinstance(result, Exception):
            raise result
        return result

    async def answer(self, history: Sequence[Turn], question: str, user: Asker | None = None) -> Answer:
        return await self._answer(history, question, user)

    async def stream(
        self, history: Sequence[Turn], question: str, user: Asker | None = None
    ) -> AsyncIterator[AnswerDelta]:
        answer = await self._answer(history, question, user)
        yield AnswerDelta(citations=answer.citations, intent=answer.intent)
        text, parts = answer.content, max(1, self.pieces)
        size = -(-len(text) // parts)
        for start in range(0, len(text), size):
            await asyncio.sleep(self.piece_delay)
            yield AnswerDelta(content=text[start : start + size])
        yield AnswerDelta(finish_reason=answer.finish_reason)

    async def ready(self) -> str | None:
        return self.not_ready

    async def aclose(self) -> None:
        return None


_activity_ids = itertools.count(1)


def activity(
    service_url: str,
    text: str = "hello",
    *,
    channel: str = "msteams",
    conversation_id: str = "a:personal-1",
    conversation_type: str | None = "personal",
    user_id: str = "29:user-1",
    aad_object_id: str | None = "aad-user-1",
    tenant: str | None = TENANT,
    activity_id: str | None = None,
    mention: bool = False,
    kind: str = "message",
    **extra: Any,
) -> dict[str, Any]:
    """A Bot Framework activity as the named channel sends it."""
    conversation: dict[str, Any] = {"id": conversation_id}
    if conversation_type:
        conversation["conversationType"] = conversation_type
    if tenant:
        conversation["tenantId"] = tenant
    sender: dict[str, Any] = {"id": user_id, "name": "Ann"}
    if aad_object_id:
        sender["aadObjectId"] = aad_object_id
    body: dict[str, Any] = {
        "type": kind,
        "id": activity_id or f"act-{next(_activity_ids)}",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "channelId": channel,
        "serviceUrl": service_url,
        "from": sender,
        "recipient": {"id": BOT_ID, "name": BOT_NAME},
        "conversation": conversation,
        "locale": "en-US",
    }
    if kind == "message":
        body["text"] = text
        body["textFormat"] = "plain"
    if channel == "msteams" and tenant:
        body["channelData"] = {"tenant": {"id": tenant}}
    if mention:
        tag = f"<at>{BOT_NAME}</at>"
        body["text"] = f"{tag} {text}"
        body["entities"] = [{"type": "mention", "mentioned": {"id": BOT_ID, "name": BOT_NAME}, "text": tag}]
    body.update(extra)
    return body
