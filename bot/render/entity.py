"""The one root `https://schema.org/Message` entity: AI label plus citation claims.

Teams and Web Chat read the same compact JSON-LD; Teams refuses a second root entity, more than 20
claims, or an unparsable claim, so every limit is applied here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.render.sources import Source, cut, cut_block

MESSAGE_TYPE = "https://schema.org/Message"
NAME_CHARS = 80
ABSTRACT_CHARS = 160
KEYWORDS = 3
KEYWORD_CHARS = 28
TEXT_CHARS = 4000
"""Web Chat shows a source without a url from `appearance.text`; a chunk is rarely longer."""


def keywords(values: Sequence[str]) -> list[str]:
    """At most three distinct, non-empty keywords of at most 28 characters each."""
    found: list[str] = []
    for value in values:
        keyword = cut(value, KEYWORD_CHARS)
        if keyword and keyword not in found:
            found.append(keyword)
    return found[:KEYWORDS]


def claim(source: Source, *, detailed: bool = True, markdown_text: bool = False) -> dict[str, Any]:
    """One `Claim`; `detailed=False` leaves out abstract and keywords (to fit the size limit).

    With `markdown_text` (Web Chat), a source without a web url carries its excerpt as Markdown,
    which Web Chat shows when the `cite:N` link is clicked. Teams reads `text` as an Adaptive Card,
    so it never gets one.
    """
    appearance: dict[str, Any] = {"@type": "DigitalDocument", "name": cut(source.name, NAME_CHARS)}
    if source.web_url:
        appearance["url"] = source.web_url
    elif markdown_text and source.excerpt:
        appearance["text"] = cut_block(source.excerpt, TEXT_CHARS if detailed else ABSTRACT_CHARS)
        appearance["encodingFormat"] = "text/markdown"
    if detailed:
        abstract = cut(source.summary, ABSTRACT_CHARS)
        if abstract:
            appearance["abstract"] = abstract
        found = keywords(source.keywords)
        if found:
            appearance["keywords"] = found
    if source.icon:
        appearance["image"] = {"@type": "ImageObject", "name": source.icon}
    return {"@type": "Claim", "position": source.position, "appearance": appearance}


AI_LABEL = "AI generated"
FEEDBACK_ACTIONS = ("LikeAction", "DislikeAction")


def message_entity(
    sources: Sequence[Source],
    *,
    detailed: bool = True,
    markdown_text: bool = False,
    feedback: bool = False,
    status: str | None = None,
) -> dict[str, Any]:
    """The root Message entity with the AI label and one claim per source (none: no `citation`).

    Web Chat (4.18) reads two more things from it: `potentialAction` Like/DislikeAction (`feedback`)
    become thumbs up/down under the message, and the first claim's `claimInterpreter` is shown on the
    quiet status line under it (`status`: the AI label and what was searched). Teams takes neither from
    here (its feedback is `channelData.feedbackLoop`), so only Web Chat replies carry them."""
    entity: dict[str, Any] = {
        "type": MESSAGE_TYPE,
        "@type": "Message",
        "@context": "https://schema.org",
        "@id": "",
        "additionalType": ["AIGeneratedContent"],
    }
    if sources:
        entity["citation"] = [
            claim(source, detailed=detailed, markdown_text=markdown_text) for source in sources
        ]
        if status:
            entity["citation"][0]["claimInterpreter"] = {
                "@type": "Project",
                "name": AI_LABEL,
                "slogan": status,
            }
    if feedback:
        entity["potentialAction"] = [
            {"@type": action, "actionStatus": "PotentialActionStatus"} for action in FEEDBACK_ACTIONS
        ]
    return entity


def citation_entity(sources: Sequence[Source], *, markdown_text: bool = False) -> dict[str, Any]:
    """The Message entity of a stream update: the claims cited so far, so their pop-ups work while
    the answer streams. No AI label or feedback: Teams takes those on the final message only."""
    return {
        "type": MESSAGE_TYPE,
        "@type": "Message",
        "@context": "https://schema.org",
        "@id": "",
        "citation": [claim(source, markdown_text=markdown_text) for source in sources],
    }
