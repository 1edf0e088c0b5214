"""A final reply per channel: Teams (entity + feedback), Web Chat (Markdown references + entity), plain."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from bot import json_text
from bot.render.entity import AI_LABEL, NAME_CHARS, message_entity
from bot.render.failures import FILTERED_ANSWER, NO_ANSWER, NOT_IN_KNOWLEDGE_BASE, failure_text
from bot.render.sources import Source, cite, cut, cut_block
from rag.contract import Answer

TEAMS = "msteams"
WEB_CHAT = ("webchat", "directline")
MESSAGE_LIMIT_BYTES = 40 * 1024
"""Teams refuses bot messages over 40 KB (measured as UTF-16), with 413 `MessageSizeTooBig`."""
ENVELOPE_BYTES = 3 * 1024
"""Room kept for what the SDK and the stream add: ids, `from`, `conversation`, `serviceUrl`, streaminfo."""
INTENT_CHARS = 200
STATUS_INTENT_CHARS = 80
"""Web Chat's status line under a message is one short line."""

ChannelKind = Literal["teams", "webchat", "plain"]
Activity = dict[str, Any]

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>])")


def channel_kind(channel_id: str) -> ChannelKind:
    """Which of the three renderings a channel gets; unknown channels get plain text with sources."""
    channel = channel_id.lower()
    if channel == TEAMS:
        return "teams"
    if channel in WEB_CHAT:
        return "webchat"
    return "plain"


def message_size(activity: Activity) -> int:
    """Bytes of the activity's JSON as it is sent (compact), in UTF-16: the way Teams counts its 40 KB."""
    return len(json_text.dumps(activity).encode("utf-16-le"))


def fits(activity: Activity) -> bool:
    return message_size(activity) + ENVELOPE_BYTES <= MESSAGE_LIMIT_BYTES


def escape_markdown(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def searched(intent: Sequence[str]) -> str:
    """The turn's search queries on one line, `a; b`, at most a short line long."""
    return cut("; ".join(query for query in intent if query.strip()), INTENT_CHARS)


def intent_line(intent: Sequence[str]) -> str:
    """`Searched for: a; b` as Markdown, or nothing when the turn ran no search."""
    queries = searched(intent)
    return escape_markdown(f"Searched for: {queries}") if queries else ""


def reference(source: Source) -> str:
    """A CommonMark link reference definition: Web Chat turns it into a citation, others into a link."""
    destination = source.web_url or f"cite:{source.position}"
    destination = destination.replace("<", "%3C").replace(">", "%3E")
    if re.search(r"[\s()]", destination):
        destination = f"<{destination}>"
    title = cut(source.name, NAME_CHARS).replace("\\", "\\\\").replace('"', '\\"')
    return f'[{source.position}]: {destination} "{title}"'


def source_line(source: Source) -> str:
    name = escape_markdown(cut(source.name, NAME_CHARS))
    return f"- [{source.position}] {name} — {source.link}" if source.link else f"- [{source.position}] {name}"


def compose(
    kind: ChannelKind, body: str, footer: str, sources: Sequence[Source], *, detailed: bool = True
) -> Activity:
    """The reply activity's fields for one channel kind, without any size check.

    `footer` is the intent: a last line of the text, except in Web Chat, where it goes on the status
    line under the message (with the AI label) so that the answer ends with the answer."""
    parts = [body, footer] if footer and kind != "webchat" else [body]
    entities: list[dict[str, Any]] = []
    channel_data: dict[str, Any] = {}
    if kind == "teams":
        entities.append(message_entity(sources, detailed=detailed))
        channel_data["feedbackLoop"] = {"type": "default"}
    elif kind == "webchat":
        if sources:
            parts.append("\n".join(reference(source) for source in sources))
        status = f"{AI_LABEL} · searched: {cut(footer, STATUS_INTENT_CHARS)}" if footer else AI_LABEL
        entities.append(
            message_entity(sources, detailed=detailed, markdown_text=True, feedback=True, status=status)
        )
    elif sources:
        parts.append("Sources:\n" + "\n".join(source_line(source) for source in sources))
    return {
        "type": "message",
        "text": "\n\n".join(parts),
        "textFormat": "markdown",
        "entities": entities,
        "channelData": channel_data,
    }


def _unmark(text: str, position: int) -> str:
    return re.sub(rf"[ \t]*\[{position}\]", "", text)


def fit(kind: ChannelKind, body: str, footer: str, sources: Sequence[Source]) -> Activity:
    """The richest reply under the size limit.

    Trimmed in this order: abstracts and keywords, then the last sources (their markers go with
    them), and only then the answer text, cut at a blank; sources whose marker was cut go too.
    """
    for detailed in (True, False):
        activity = compose(kind, body, footer, sources, detailed=detailed)
        if fits(activity):
            return activity
    kept = list(sources)
    text = body
    while kept:
        text = _unmark(text, kept.pop().position)
        activity = compose(kind, text, footer, kept, detailed=False)
        if fits(activity):
            return activity

    def attempt(length: int) -> Activity:
        cut_text = cut_block(body, length)
        used = [source for source in sources if f"[{source.position}]" in cut_text]
        return compose(kind, cut_text, footer, used, detailed=False)

    low, high = 1, len(body)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(attempt(middle)):
            low = middle
        else:
            high = middle - 1
    return attempt(low)


def notice(text: str, *, kind: ChannelKind = "plain", feedback: bool = False) -> Activity:
    """A reply without sources; `feedback` adds thumbs up/down (Teams' feedback loop, Web Chat's actions)."""
    channel_data = {"feedbackLoop": {"type": "default"}} if feedback and kind == "teams" else {}
    entities = [message_entity([], feedback=True)] if feedback and kind == "webchat" else []
    return {
        "type": "message",
        "text": text,
        "textFormat": "markdown",
        "entities": entities,
        "channelData": channel_data,
    }


def render_reply(
    answer: Answer,
    channel_id: str,
    conversation_type: str | None,
    *,
    show_intent: bool = True,
    viewer: str | None = None,
) -> Activity:
    """The reply activity's fields (`type`, `text`, `textFormat`, `entities`, `channelData`).

    `conversation_type` is accepted so callers pass the same pair as to :func:`can_stream`; a
    Teams reply looks the same in personal chats, group chats and channels. `viewer` is where the
    bot serves indexed documents (`/sources/`): sources without a url that opens link there.
    """
    kind = channel_kind(channel_id)
    if answer.refused:
        # Feedback on a refusal tells the team which questions the knowledge base misses.
        footer = intent_line(answer.intent) if show_intent and kind != "webchat" else ""
        text = f"{NOT_IN_KNOWLEDGE_BASE}\n\n{footer}" if footer else NOT_IN_KNOWLEDGE_BASE
        return notice(text, kind=kind, feedback=True)
    if answer.finish_reason == "content_filter":
        return notice(FILTERED_ANSWER, kind=kind)
    cited = cite(answer.content, answer.citations, viewer)
    body = cited.text.strip()
    if not body:
        return notice(NO_ANSWER, kind=kind)
    if not show_intent:
        footer = ""
    elif kind == "webchat":
        footer = searched(answer.intent)
    else:
        footer = intent_line(answer.intent)
    return fit(kind, body, footer, cited.sources)


def render_error(exc: BaseException, channel_id: str) -> Activity:
    """The reply for a failed turn: a specific sentence per `rag.errors` type, never a stack trace."""
    return notice(failure_text(exc), kind=channel_kind(channel_id))
