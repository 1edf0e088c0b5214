"""Reply rendering: pure functions from an :class:`~rag.contract.Answer` to activity fields.

Every function returns plain dicts (`type`, `text`, `textFormat`, `entities`, `channelData`) that
the caller merges into a botbuilder ``Activity`` (e.g. ``Activity().deserialize(fields)`` or
``MessageFactory`` + attributes). Nothing here does I/O.

Final replies
    ``render_reply(answer, channel_id, conversation_type, *, show_intent=True)``
        `[docN]` markers become `[1]`, `[2]`, ... by first use; uncited citations and markers
        past the list disappear; citations with the same url or file path merge; then per channel:
        ``msteams``: text with `[n]`, one `https://schema.org/Message` entity (AI label + claims),
        ``channelData.feedbackLoop.type = "default"``; ``webchat``/``directline``: Markdown with
        reference definitions (`[1]: url "title"`, `cite:N` without a url) + the same entity;
        anything else: text with `[n]` and a "Sources:" list. A "Searched for: ..." line shows the
        intent unless ``show_intent`` is false. The in-scope refusal becomes a friendly sentence.
        Always under 40 KB: abstracts, then sources, then text are trimmed.
    ``render_error(exc, channel_id)``
        The reply for a failed turn: `ContentFiltered`, `Throttled` ("try again in N s"),
        `NotReady`, `DataSourceError`, `AuthError`, `UpstreamUnavailable`, anything else.

Streaming (send sequentially, >= 1 s apart in Teams; the caller keeps the sequence and stream id)
    ``can_stream(channel_id, conversation_type)``: Teams personal chats, Web Chat, Direct Line.
    ``informative_text(intent)``: "Searching for: ..." for the first update.
    ``stream_informative(text, sequence, stream_id=None)``,
    ``stream_chunk(text, sequence, stream_id=None)``: `typing` updates; `sequence` is 1, 2, 3 ...
        across both kinds; `stream_id` is the id returned by the first send (None for the first).
    ``cite_partial(content_so_far, citations_or_None)``: the text to pass to `stream_chunk`:
        numbered like the final reply will be, each result a prefix of the next; send only when it
        grew.
    ``stream_final(render_reply(...) or render_error(...), stream_id)``: the closing `message`.
"""

from bot.render.reply import channel_kind, render_error, render_reply
from bot.render.sources import MAX_SOURCES, Cited, Source, cite, cite_partial, stream_cited
from bot.render.streaming import (
    can_stream,
    informative_text,
    stream_chunk,
    stream_final,
    stream_informative,
)

__all__ = [
    "MAX_SOURCES",
    "Cited",
    "Source",
    "can_stream",
    "channel_kind",
    "cite",
    "cite_partial",
    "informative_text",
    "render_error",
    "render_reply",
    "stream_chunk",
    "stream_cited",
    "stream_final",
    "stream_informative",
]
