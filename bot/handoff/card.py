"""The hand-off as people see it: an Adaptive Card (Teams, Web Chat, a Teams Workflow), plain text
elsewhere, and the JSON a generic webhook receives. Pure functions, no I/O.

Whatever the user or the bot wrote goes into the card as `TextRun`s, which no host reads as Markdown:
a question holding `[click here](https://...)` reaches the agent as that text, not as a link. The card
stays far below Teams' 28 KB card limit: the latest exchanges only, each text cut to a few lines.
"""

from __future__ import annotations

from typing import Any

from rag.summary import Exchange, Summary, Transcript, plain

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
"""Rendered by Teams (1.5), Web Chat 4.18 and the Workflows "post card" action alike."""
SHOWN_EXCHANGES = 5
SHOWN_SOURCES = 5
QUESTION_CHARS = 300
ANSWER_CHARS = 400
SOURCE_CHARS = 160
FACT_CHARS = 200
SUMMARY_CHARS = 2000
Json = dict[str, Any]


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _runs(*runs: Json, **block: Any) -> Json:
    return {"type": "RichTextBlock", "inlines": list(runs), **block}


def _run(text: str, **style: Any) -> Json:
    return {"type": "TextRun", "text": text, **style}


def counts(transcript: Transcript) -> list[tuple[str, str]]:
    exchanges = transcript.exchanges
    facts = [("Questions", str(len(exchanges)))]
    refused = sum(e.refused for e in exchanges)
    disliked = sum(any(f.startswith("dislike") for f in e.feedback) for e in exchanges)
    if refused:
        facts.append(("Not answered", str(refused)))
    if disliked:
        facts.append(("Rated down", str(disliked)))
    return facts


def _exchange_block(number: int, exchange: Exchange) -> Json:
    answer = (
        _run("Not found in the knowledge base.", isSubtle=True, italic=True)
        if exchange.refused
        else _run(_cut(plain(exchange.answer), ANSWER_CHARS) or "(no answer)")
    )
    items: list[Json] = [
        _runs(_run(f"{number}. "), _run(_cut(exchange.question, QUESTION_CHARS), weight="Bolder")),
        _runs(answer, spacing="Small"),
    ]
    if exchange.sources:
        shown = [_cut(source, SOURCE_CHARS) for source in exchange.sources[:SHOWN_SOURCES]]
        items.append(
            _runs(_run("Sources: " + "; ".join(shown), isSubtle=True, size="Small"), spacing="Small")
        )
    if exchange.feedback:
        disliked = any(f.startswith("dislike") for f in exchange.feedback)
        text = _cut("Feedback: " + "; ".join(exchange.feedback), QUESTION_CHARS)
        items.append(
            _runs(_run(text, color="Attention" if disliked else "Good", size="Small"), spacing="Small")
        )
    return {"type": "Container", "items": items, "separator": True, "spacing": "Medium"}


def handoff_card(
    summary: Summary, transcript: Transcript, *, facts: list[tuple[str, str]] | None = None
) -> Json:
    """The Adaptive Card: title, summary, who and where (`facts`), counts, then the latest exchanges."""
    body: list[Json] = [
        {
            "type": "TextBlock",
            "text": "Hand-off to a person",
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        _runs(_run(_cut(summary.text, SUMMARY_CHARS))),
    ]
    lines = [
        *(facts or []),
        *(counts(transcript) if transcript.exchanges else []),
        ("Summary by", summary.method),
    ]
    for label, value in lines:
        body.append(_runs(_run(f"{label}: ", weight="Bolder"), _run(_cut(value, FACT_CHARS)), spacing="None"))
    first = max(0, len(transcript.exchanges) - SHOWN_EXCHANGES)
    for number, exchange in enumerate(transcript.exchanges[first:], start=first + 1):
        body.append(_exchange_block(number, exchange))
    return {"type": "AdaptiveCard", "$schema": CARD_SCHEMA, "version": CARD_VERSION, "body": body}


def card_attachment(card: Json) -> Json:
    return {"contentType": CARD_CONTENT_TYPE, "content": card}


def workflow_message(card: Json) -> Json:
    """What a Teams Workflow ("When a Teams webhook request is received") takes: a message envelope."""
    return {"type": "message", "attachments": [{**card_attachment(card), "contentUrl": None}]}


def handoff_text(summary: Summary, transcript: Transcript, *, status: str = "") -> str:
    """The plain-text version, for channels without Adaptive Cards."""
    lines = ["**Hand-off to a person**"]
    if status:
        lines.append(status)
    lines += ["", summary.text]
    if transcript.exchanges:
        facts = [*counts(transcript), ("summary by", summary.method)]
        lines += ["", " · ".join(f"{label}: {value}" for label, value in facts)]
    return "\n".join(lines)


def webhook_json(summary: Summary, transcript: Transcript, about: dict[str, Any], card: Json) -> Json:
    """ragbot's generic hand-off JSON: who and where, the summary, every exchange, and the card."""
    return {
        "type": "ragbot.handoff",
        **about,
        "summary": summary.text,
        "summary_method": summary.method,
        "exchanges": [e.model_dump() for e in transcript.exchanges],
        "text": transcript.text or None,
        "card": card,
    }
