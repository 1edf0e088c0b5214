"""The hand-off as people see it: an Adaptive Card (Teams, Web Chat, a Teams Workflow), plain text
elsewhere, and the JSON a generic webhook receives. Pure functions, no I/O.

The card stays far below Teams' 40 KB: the latest exchanges only, each text cut to a few lines.
"""

from __future__ import annotations

from typing import Any

from rag.summary import Exchange, Summary, Transcript

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
"""Rendered by Teams (1.5), Web Chat 4.18 and the Workflows "post card" action alike."""
SHOWN_EXCHANGES = 5
QUESTION_CHARS = 300
ANSWER_CHARS = 500
SUMMARY_CHARS = 2000
Json = dict[str, Any]


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


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
    items: list[Json] = [
        {
            "type": "TextBlock",
            "text": f"{number}. {_cut(exchange.question, QUESTION_CHARS)}",
            "weight": "Bolder",
            "wrap": True,
        },
        {
            "type": "TextBlock",
            "text": "Not found in the knowledge base."
            if exchange.refused
            else _cut(exchange.answer, ANSWER_CHARS) or "(no answer)",
            "isSubtle": exchange.refused,
            "wrap": True,
            "spacing": "Small",
        },
    ]
    if exchange.sources:
        items.append(
            {
                "type": "TextBlock",
                "text": "Sources: " + "; ".join(exchange.sources),
                "isSubtle": True,
                "size": "Small",
                "wrap": True,
                "spacing": "Small",
            }
        )
    if exchange.feedback:
        items.append(
            {
                "type": "TextBlock",
                "text": "Feedback: " + "; ".join(exchange.feedback),
                "color": "Attention" if any(f.startswith("dislike") for f in exchange.feedback) else "Good",
                "size": "Small",
                "wrap": True,
                "spacing": "Small",
            }
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
        }
    ]
    body.append({"type": "TextBlock", "text": _cut(summary.text, SUMMARY_CHARS), "wrap": True})
    all_facts = [*(facts or []), *counts(transcript), ("Summary by", summary.method)]
    if transcript.exchanges:
        body.append({"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in all_facts]})
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
    """The plain-text version, for channels without Adaptive Cards and for `ragbot summarize`."""
    lines = ["**Hand-off to a person**"]
    if status:
        lines.append(status)
    lines += ["", summary.text]
    if transcript.exchanges:
        lines.append("")
        lines.append(
            " · ".join(f"{t}: {v}" for t, v in [*counts(transcript), ("summary by", summary.method)])
        )
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
