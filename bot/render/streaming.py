"""Streamed replies: `typing` updates tied by a stream id, then the final message.

Teams reads the stream fields from a `streaminfo` entity, Web Chat (>= 4.17) from `channelData`;
every activity carries both, which each client ignores when it is not its form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from bot.render.entity import citation_entity
from bot.render.reply import TEAMS, WEB_CHAT, Activity, searched
from bot.render.sources import Source, cut

INFORMATIVE_CHARS = 1000
"""Teams shows informative updates up to 1 KB."""

StreamType = Literal["informative", "streaming"]


def can_stream(channel_id: str, conversation_type: str | None) -> bool:
    """Teams streams in personal chats only; Web Chat and Direct Line stream (over WebSocket)."""
    channel = channel_id.lower()
    if channel == TEAMS:
        return conversation_type == "personal"
    return channel in WEB_CHAT


def informative_text(intent: Sequence[str] = ()) -> str:
    """What the user sees while the answer is prepared: the search, when it is known."""
    queries = searched(intent)
    return f"Searching for: {queries}…" if queries else "Searching the knowledge base…"


def _stream_fields(stream_type: str, sequence: int | None, stream_id: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"streamType": stream_type}
    if sequence is not None:
        fields["streamSequence"] = sequence
    if stream_id:
        fields["streamId"] = stream_id
    return fields


def _update(stream_type: StreamType, text: str, sequence: int, stream_id: str | None) -> Activity:
    if sequence < 1:
        raise ValueError(f"streamSequence starts at 1, got {sequence}")
    if not text.strip():
        raise ValueError("a stream update needs text (Teams refuses an empty one)")
    if sequence > 1 and not stream_id:
        raise ValueError("updates after the first need the stream id the first send returned")
    fields = _stream_fields(stream_type, sequence, stream_id)
    return {
        "type": "typing",
        "text": text,
        "entities": [{"type": "streaminfo", **fields}],
        "channelData": fields,
    }


def stream_informative(text: str, sequence: int, stream_id: str | None = None) -> Activity:
    """A status line (`Searching for: ...`); the first activity of a stream has no id yet."""
    return _update("informative", cut(text, INFORMATIVE_CHARS), sequence, stream_id)


def stream_chunk(
    text: str,
    sequence: int,
    stream_id: str | None = None,
    *,
    sources: Sequence[Source] = (),
    markdown_text: bool = False,
) -> Activity:
    """The whole answer text so far (from :func:`cite_partial`), never a delta, with the `sources`
    it cites (from :func:`stream_cited`)."""
    update = _update("streaming", text, sequence, stream_id)
    if sources:
        update["entities"].append(citation_entity(sources, markdown_text=markdown_text))
    return update


def stream_final(reply: Activity, stream_id: str) -> Activity:
    """`reply` (from `render_reply` or `render_error`) as the message that ends the stream.

    `streamType: "final"` and the id, no sequence; the reply's entities (the one Message entity)
    and `channelData` (feedback) are kept.
    """
    if not stream_id:
        raise ValueError("the final message needs the stream id")
    fields = _stream_fields("final", None, stream_id)
    return {
        **reply,
        "type": "message",
        "entities": [{"type": "streaminfo", **fields}, *reply.get("entities", [])],
        "channelData": {**reply.get("channelData", {}), **fields},
    }
