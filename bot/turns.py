"""The turn logic: one inbound activity (plain Bot Framework JSON) -> replies, memory, feedback.

No botbuilder type appears here: activities are dicts, answers come through the rag contract,
replies leave through an :class:`~bot.outbox.Outbox` and state through the state seam (`bot.state`),
so another host (the Microsoft 365 Agents SDK) can drive the same logic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from opentelemetry.trace import SpanKind

from bot.activity import (
    Activity,
    conversation_type,
    mentions_bot,
    needs_mention,
    question_text,
    tenant_of,
    thread_key,
)
from bot.feedback import BadFeedback, FeedbackRecord, parse_submit_action, save_feedback, with_answer
from bot.handoff import HANDOFF_COMMANDS, HandOff, dislike_offer, refusal_hint, with_offer
from bot.handoff.transcript import thread_transcript
from bot.handoff.webhook import Delivery
from bot.hosts.errors import OutboxError
from bot.identity import ACCESS_UNKNOWN, GroupsUnavailable, Identities, Principal
from bot.limits import WINDOW_S, tenant_allowed
from bot.memory import KeyedLocks, RatedAnswer, Snapshot, ThreadMemory
from bot.outbox import Outbox
from bot.pacing import paced
from bot.refusals import RefusalRecord, save_refusal
from bot.render import can_stream, channel_kind, informative_text, render_error, render_reply, stream_cited
from bot.render.failures import NOT_IN_KNOWLEDGE_BASE, retry_seconds
from bot.settings import BotSettings
from bot.state import StateError, StateStore
from bot.streamer import Streamer, StreamStopped
from bot.typing_indicator import TypingIndicator
from rag import telemetry
from rag.contract import Answer, AnswerBuilder, Answerer, Asker, Library, Turn
from rag.errors import RagError, UpstreamUnavailable
from rag.summary import Summary, Transcript

log = logging.getLogger(__name__)

WEB_CHAT_CHANNELS = ("webchat", "directline")
RESET_COMMANDS = ("reset", "new")
OTHER_TENANT = (
    "Sorry, I can only answer questions from people in my own organisation, so I can't help you here."
)
WELCOME_SUGGESTIONS = 3
SUGGESTIONS_TIMEOUT_S = 10.0
SOURCES_PREFIX = "/sources/"
RESET_DONE = "Done: I've forgotten this conversation. Ask me anything."
MEMORY_DOWN = (
    "Sorry, I can't reach my conversation memory right now, so I can't answer. Please try again in a minute."
)
NOT_SAVED = (
    "I can't save this conversation right now, so I won't remember this question when you ask the next "
    "one. Please try again later if you need me to."
)


@dataclass(frozen=True)
class TurnTiming:
    """Stream pacing; tests shorten it, the rule (one request per interval) stays the same."""

    stream_interval: float = 1.0
    """Teams accepts at most one stream request per second."""
    web_stream_interval: float = 0.25
    """Web Chat and Direct Line have no such rule: updates this often show the text growing."""
    stream_budget: float = 100.0
    """Teams ends a stream after two minutes; past this the answer is given up and the stream closed."""
    typing_delay: float = 0.25
    """A non-streamed answer slower than this is announced with a typing indicator."""
    typing_period: float = 3.0
    """...which is repeated this often until the answer is ready."""


class InvokeReply(NamedTuple):
    status: int
    body: object


def _message(text: str, **fields: object) -> Activity:
    return {"type": "message", "text": text, "textFormat": "markdown", **fields}


def _recordable(answer: Answer) -> bool:
    """Refusals, filtered and empty answers are failures: they leave the history as it was."""
    return not (answer.refused or answer.finish_reason == "content_filter" or not answer.content.strip())


class TurnHandler:
    def __init__(
        self,
        settings: BotSettings,
        answerer: Answerer,
        store: StateStore,
        *,
        timing: TurnTiming | None = None,
        handoff: HandOff | None = None,
        identities: Identities | None = None,
    ) -> None:
        self.settings = settings
        self.handoff = handoff or HandOff(settings)
        self.identities = identities or Identities(trust_activities=settings.auth_enabled)
        self.answerer = answerer
        self.store = store
        self.timing = timing or TurnTiming()
        self.memory = ThreadMemory(store, settings.history_tokens)
        self.locks = KeyedLocks()
        self.library = library_of(answerer)

    async def handle(
        self,
        activity: Activity,
        outbox: Outbox,
        *,
        host: str = "local_directline",
        carrier: Mapping[str, str] | None = None,
        principal: Principal | None = None,
    ) -> InvokeReply | None:
        """Run one turn; an invoke gets the status and body to answer the HTTP request with.

        Traced, the turn is one SERVER span that continues the W3C trace of `carrier` (the inbound
        request's headers); `host` names who delivered it. `principal`: the asker a transport of this
        process vouches for (the local Direct Line's token)."""
        if not telemetry.enabled():
            return await self._handle(activity, outbox, principal)
        with telemetry.span(
            f"turn {activity['type']}",
            self._span_attributes(activity, host),
            kind=SpanKind.SERVER,
            carrier=carrier,
        ):
            return await self._handle(activity, outbox, principal)

    def _span_attributes(self, activity: Activity, host: str) -> dict[str, str]:
        attributes = {
            "ragbot.channel": activity["channelId"],
            "ragbot.conversation.type": conversation_type(activity),
            "ragbot.conversation.id": activity["conversation"]["id"],
            "ragbot.activity.type": activity["type"],
            "ragbot.activity.id": str(activity.get("id") or ""),
            "ragbot.host": host,
            "ragbot.backend": self.answerer.name,
        }
        if telemetry.content_enabled() and activity["type"] == "message":
            attributes["ragbot.question"] = question_text(activity)
        return attributes

    async def _handle(
        self, activity: Activity, outbox: Outbox, principal: Principal | None
    ) -> InvokeReply | None:
        kind = activity["type"]
        if kind == "message":
            await self._on_message(activity, outbox, principal)
        elif kind == "conversationUpdate":
            await self._on_conversation_update(activity, outbox)
        elif kind == "event" and activity.get("name") == "webchat/join":
            if self._allowed(activity):
                await outbox.send(await self.welcome())
        elif kind == "invoke":
            return await self._on_invoke(activity, outbox)
        return None

    # --- texts -------------------------------------------------------------------------------

    async def suggestions(self) -> list[str]:
        """`RAGBOT_WELCOME_QUESTIONS`, else the titles most central to the local index (recomputed only
        when the index changed; none when the backend has no local index or it cannot be read in time)."""
        if self.settings.welcome_questions:
            return self.settings.welcome_questions[:WELCOME_SUGGESTIONS]
        if self.library is None:
            return []
        try:
            async with asyncio.timeout(SUGGESTIONS_TIMEOUT_S):
                return await self.library.central_titles(WELCOME_SUGGESTIONS)
        except (TimeoutError, RagError) as exc:
            log.warning("welcome: no suggestions from the knowledge base: %s", exc or "timed out")
            return []

    async def welcome(self) -> Activity:
        questions = await self.suggestions()
        text = (
            f"Hi, I'm {self.settings.app_name}. I answer questions from the knowledge base "
            "and show where each answer comes from. Ask me anything"
        )
        text += ", or try one of these:" if questions else "."
        actions = [{"type": "imBack", "title": q, "value": q} for q in questions]
        return _message(text, suggestedActions={"actions": actions})

    def help_text(self, activity: Activity) -> str:
        lines = [
            f"I'm {self.settings.app_name}: ask me a question in plain words and I'll answer from the "
            "company's knowledge base, with numbered sources.",
            "",
            "- **help**: this message",
            "- **reset** or **new**: forget this conversation and start over",
            "- **handoff**: pass this conversation to a person, with a summary of it",
        ]
        if needs_mention(activity):
            lines.append("")
            lines.append("Here, mention me (@) in your message so I know it's for me.")
        return "\n".join(lines)

    # --- messages ----------------------------------------------------------------------------

    def _allowed(self, activity: Activity) -> bool:
        return tenant_allowed(self.settings.allowed_tenants, tenant_of(activity))

    async def _on_message(self, activity: Activity, outbox: Outbox, principal: Principal | None) -> None:
        started = time.perf_counter()
        try:
            result = await self._handle_message(activity, outbox, principal)
        except StateError as exc:  # unreachable, full, or still conflicting after every retry
            log.warning("turn not answered: the conversation store is unavailable: %s", exc)
            await outbox.send(_message(MEMORY_DOWN))
            result = "failed"
        if result is not None:
            telemetry.record_turn(result, activity["channelId"], started)

    async def _handle_message(
        self, activity: Activity, outbox: Outbox, vouched: Principal | None
    ) -> str | None:
        """The question's outcome (`telemetry.outcome`), None for anything that was not a question."""
        if needs_mention(activity) and not mentions_bot(activity):
            return None
        if not self._allowed(activity):
            log.info("refused a message from tenant %s", tenant_of(activity))
            await outbox.send(_message(OTHER_TENANT))
            return None
        who = self.identities.principal(activity, vouched)
        wait = await self.store.take(
            f"rate|{activity['channelId']}|{who.object_id if who else activity['from']['id']}",
            self.settings.user_turns_per_minute,
            WINDOW_S,
        )
        if wait:
            await outbox.send(
                _message(
                    "You're asking faster than I can keep up. "
                    f"Please wait {retry_seconds(wait)} s and ask again."
                )
            )
            return None
        question = question_text(activity)
        command = question.lower().strip(" /!.")
        if not question or command == "help":
            await outbox.send(_message(self.help_text(activity)))
            return None
        key = thread_key(activity)
        asker: Asker | None = None
        if command not in RESET_COMMANDS + HANDOFF_COMMANDS:
            try:
                asker = await self.identities.asker(activity, who)
            except GroupsUnavailable as exc:
                log.warning("turn not answered: the asker's groups cannot be read: %s", exc)
                await outbox.send(_message(ACCESS_UNKNOWN))
                return "failed"
        async with self.locks.hold(key):
            if command in RESET_COMMANDS:
                await self.memory.clear_history(key, activity.get("id"))
                await outbox.send(_message(RESET_DONE))
                return None
            with telemetry.span("ragbot.memory.load", {"ragbot.store": self.store.name}):
                snapshot = await self.memory.load(key)
            if activity.get("id") and activity["id"] in snapshot.state.seen:
                log.info("activity %s was already answered; not answering it again", activity["id"])
                return None
            if asker is None:  # the hand-off command: nothing is searched
                await self._hand_off(activity, key, snapshot, outbox)
                return None
            streaming = (
                self.settings.streaming
                and not outbox.buffered
                and can_stream(activity["channelId"], conversation_type(activity))
            )
            if streaming:
                return await self._answer_streamed(activity, key, snapshot, question, asker, outbox)
            return await self._answer_once(activity, key, snapshot, question, asker, outbox)

    def viewer(self, channel_id: str) -> str | None:
        """Where sources without a url open: the bot's `/sources/` view, when it serves one. Web Chat's
        page is served by the bot, so a path does; other channels need `RAGBOT_PUBLIC_HOSTNAME`."""
        if self.library is None:
            return None
        if self.settings.public_hostname:
            return f"https://{self.settings.public_hostname}{SOURCES_PREFIX}"
        return SOURCES_PREFIX if channel_kind(channel_id) == "webchat" else None

    def _render(self, activity: Activity, answer: Answer) -> Activity:
        with telemetry.span("ragbot.render"):
            reply = render_reply(
                answer,
                activity["channelId"],
                conversation_type(activity),
                show_intent=self.settings.show_intent,
                viewer=self.viewer(activity["channelId"]),
            )
        if answer.refused:
            buttons = not needs_mention(activity)  # Teams channels and group chats show no suggestions
            text = reply["text"].replace(
                NOT_IN_KNOWLEDGE_BASE, f"{NOT_IN_KNOWLEDGE_BASE} {refusal_hint(buttons)}", 1
            )
            return with_offer({**reply, "text": text}, buttons)
        return reply

    async def _hand_off(self, activity: Activity, key: str, snapshot: Snapshot, outbox: Outbox) -> None:
        """Summarize the thread, post it to the help desk, show the user the card and the outcome.

        Runs holding the thread's lock and records the activity as answered before replying, so a
        channel's redelivery (Teams retries a slow turn) neither posts twice nor races the first. The
        history itself is only read, whatever happens to the post."""
        typing = TypingIndicator(outbox, self.timing.typing_delay, self.timing.typing_period)
        with telemetry.span("ragbot.handoff"):
            summary, transcript, delivery = await self._summarized_and_posted(activity, snapshot, typing)
            telemetry.annotate(
                {
                    "ragbot.handoff.summary": summary.method,
                    "ragbot.handoff.delivered": "none" if delivery is None else str(delivery.sent).lower(),
                }
            )
        try:
            await self.memory.record_turn(key, snapshot, activity.get("id"))
        except StateError as exc:
            log.warning("hand-off not marked as answered: the conversation store is unavailable: %s", exc)
        kind = channel_kind(activity["channelId"])
        await outbox.send(self.handoff.reply(kind, summary, transcript, delivery))

    async def _summarized_and_posted(
        self, activity: Activity, snapshot: Snapshot, typing: TypingIndicator
    ) -> tuple[Summary, Transcript, Delivery | None]:
        try:
            transcript = await thread_transcript(self.store, snapshot.state, activity["channelId"])
            summary = await self.handoff.summarize(transcript)
            user = activity["from"]
            about = {
                "app": self.settings.app_name,
                "channel": activity["channelId"],
                "conversation_id": activity["conversation"]["id"],
                "user": user.get("name") or user["id"],
                "user_id": self.identities.user_id(activity),
                "tenant_id": tenant_of(activity),
            }
            delivery = await self.handoff.deliver(summary, transcript, about)
        finally:
            await typing.stop()
        return summary, transcript, delivery

    async def _answer_once(
        self, activity: Activity, key: str, snapshot: Snapshot, question: str, asker: Asker, outbox: Outbox
    ) -> str:
        typing = TypingIndicator(outbox, self.timing.typing_delay, self.timing.typing_period)
        failure: BaseException | None = None
        try:
            answer = await self.answerer.answer(snapshot.state.history(), question, asker)
        except Exception as exc:
            failure = exc
        finally:
            await typing.stop()
        if failure is not None:
            self._log_failure(failure)
            await outbox.send(render_error(failure, activity["channelId"]))
            return telemetry.outcome(None, failure)
        reply = self._render(activity, answer)
        reply_id = await outbox.send(reply)
        await self._remember(activity, key, snapshot, question, answer, reply_id, outbox)
        return telemetry.outcome(answer)

    async def _answer_streamed(
        self, activity: Activity, key: str, snapshot: Snapshot, question: str, asker: Asker, outbox: Outbox
    ) -> str | None:
        teams = channel_kind(activity["channelId"]) == "teams"
        interval = self.timing.stream_interval if teams else self.timing.web_stream_interval
        streamer = Streamer(outbox, interval, markdown_text=not teams)
        viewer = self.viewer(activity["channelId"])
        try:
            if not await streamer.start(informative_text(), as_text=not teams):
                return await self._answer_once(activity, key, snapshot, question, asker, outbox)
        except StreamStopped:
            return None
        builder = AnswerBuilder()
        cited = False
        failure: BaseException | None = None
        started, first = time.perf_counter(), True
        try:
            async with asyncio.timeout(self.timing.stream_budget):
                deltas = paced(self.answerer.stream(snapshot.state.history(), question, asker))
                try:
                    async for delta in deltas:
                        if first and delta.content:
                            telemetry.record_first_token(started, activity["channelId"])
                            first = False
                        builder.add(delta)
                        cited = cited or delta.citations is not None
                        partial = stream_cited(
                            builder.text, builder.answer.citations if cited else None, viewer
                        )
                        streamer.offer(partial.text, partial.sources)
                finally:
                    close = getattr(deltas, "aclose", None)
                    if close is not None:
                        await close()
        except StreamStopped:
            await streamer.abort()
            return None
        except TimeoutError:
            failure = UpstreamUnavailable("the answer took longer than a stream may last")
        except Exception as exc:
            failure = exc
        if failure is not None:
            self._log_failure(failure)
            reply = render_error(failure, activity["channelId"])
        else:
            answer = builder.build()
            reply = self._render(activity, answer)
        try:
            stream_id = await streamer.finish(reply)
        except StreamStopped:
            return None
        if failure is not None:
            return telemetry.outcome(None, failure)
        await self._remember(activity, key, snapshot, question, answer, stream_id, outbox)
        return telemetry.outcome(answer)

    async def _remember(
        self,
        activity: Activity,
        key: str,
        snapshot: Snapshot,
        question: str,
        answer: Answer,
        reply_id: str | None,
        outbox: Outbox,
    ) -> None:
        """Save the turn; if the store refuses (down, disk full), say so: the history stays as it was."""
        if answer.refused:
            await self._note_refusal(activity, question, answer)
        if answer.refused and reply_id:
            await self._remember_refusal(activity, key, snapshot, question, answer, reply_id)
        if not _recordable(answer):
            return
        turns: Sequence[Turn] = (
            Turn(role="user", content=question),
            # History needs no citations: they are kept with the rated answer, for feedback.
            Turn(role="assistant", content=answer.content, intent=answer.intent),
        )
        rated = None
        if reply_id:
            rated = RatedAnswer(
                activity_id=reply_id,
                question=question,
                answer=answer.content,
                citations=answer.citations,
                intent=answer.intent,
            )
        try:
            with telemetry.span("ragbot.memory.save", {"ragbot.store": self.store.name}):
                await self.memory.record_turn(key, snapshot, activity.get("id"), turns, rated)
        except StateError as exc:
            log.warning("answered but not saved: the conversation store is unavailable: %s", exc)
            await outbox.send(_message(NOT_SAVED))

    async def _remember_refusal(
        self, activity: Activity, key: str, snapshot: Snapshot, question: str, answer: Answer, reply_id: str
    ) -> None:
        """A refusal stays out of the history but is kept with the answers, for feedback and the hand-off."""
        rated = RatedAnswer(
            activity_id=reply_id, question=question, answer=answer.content, intent=answer.intent, refused=True
        )
        try:
            await self.memory.record_turn(key, snapshot, activity.get("id"), (), rated)
        except StateError as exc:
            log.warning("refusal not kept for the hand-off: the conversation store is unavailable: %s", exc)

    async def _note_refusal(self, activity: Activity, question: str, answer: Answer) -> None:
        """Keep the refused question for `ragbot gaps`; the user already has the refusal, so a store
        fault is only logged."""
        record = RefusalRecord(
            question=question,
            channel_id=activity["channelId"],
            conversation_id=activity["conversation"]["id"],
            user_id=self.identities.user_id(activity),
            tenant_id=tenant_of(activity),
            intent=answer.intent,
            citations=answer.citations,
            **({"activity_id": activity["id"]} if activity.get("id") else {}),
        )
        try:
            await save_refusal(self.store, record)
        except StateError as exc:
            log.warning("refused question not recorded: the conversation store is unavailable: %s", exc)

    @staticmethod
    def _log_failure(exc: BaseException) -> None:
        if isinstance(exc, RagError):
            log.warning("answer failed: %s: %s", type(exc).__name__, exc)
        else:
            log.error("answer failed unexpectedly", exc_info=exc)

    # --- welcome -----------------------------------------------------------------------------

    async def _on_conversation_update(self, activity: Activity, outbox: Outbox) -> None:
        if activity["channelId"] in WEB_CHAT_CHANNELS or not self._allowed(activity):
            return  # Web Chat greets on its `webchat/join` event instead
        bot_id = (activity.get("recipient") or {}).get("id")
        added = [member.get("id") for member in activity.get("membersAdded") or []]
        if conversation_type(activity) in ("channel", "groupChat"):
            greet = bot_id in added  # the bot joined; don't greet every new member of a team
        else:
            greet = any(member != bot_id for member in added)
        if greet:
            await outbox.send(await self.welcome())

    # --- invokes -----------------------------------------------------------------------------

    async def _on_invoke(self, activity: Activity, outbox: Outbox) -> InvokeReply:
        name = activity.get("name")
        if name != "message/submitAction":
            return InvokeReply(400, {"error": f"unsupported invoke {name!r}"})
        if not self._allowed(activity):
            return InvokeReply(403, {})
        reply_to = activity.get("replyToId")
        if not reply_to:
            return InvokeReply(400, {"error": "replyToId: the rated message's id is required"})
        try:
            reaction, comment = parse_submit_action(activity.get("value"))
        except BadFeedback as exc:
            return InvokeReply(400, {"error": str(exc)})
        key = thread_key(activity)
        try:
            rated = (await self.memory.load(key)).state.answer(reply_to)
        except StateError as exc:
            log.warning("feedback not saved: the conversation store is unavailable: %s", exc)
            return InvokeReply(503, {"error": "feedback cannot be saved right now"})
        record = FeedbackRecord(
            reply_to_id=reply_to,
            reaction=reaction,
            comment=comment,
            channel_id=activity["channelId"],
            conversation_id=activity["conversation"]["id"],
            user_id=self.identities.user_id(activity),
            tenant_id=tenant_of(activity),
        )
        try:
            earlier = await self.store.read(record.key)
            await save_feedback(self.store, with_answer(record, rated))
        except StateError as exc:
            log.warning("feedback not saved: the conversation store is unavailable: %s", exc)
            return InvokeReply(503, {"error": "feedback cannot be saved right now"})
        telemetry.record_feedback("up" if reaction == "like" else "down")
        first_dislike = (
            earlier is None or FeedbackRecord.model_validate_json(earlier.doc).reaction != "dislike"
        )
        if reaction == "dislike" and first_dislike and not outbox.buffered:
            try:
                buttons = not needs_mention(activity)
                await outbox.send(with_offer(_message(dislike_offer(buttons)), buttons))
            except OutboxError as exc:  # the rating is saved: the offer is only a courtesy
                log.warning("could not offer a hand-off after a thumbs-down: %s", exc)
        return InvokeReply(200, {})


def library_of(answerer: Answerer) -> Library | None:
    """The backend's indexed documents (`Library`), when it answers from the local index."""
    library = getattr(answerer, "library", None)
    return library if isinstance(library, Library) else None
