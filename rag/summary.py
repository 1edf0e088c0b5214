"""A conversation summarized for the person who takes it over from the bot (the hand-off).

The chat model writes it when one is configured (`AZURE_OPENAI_*`, or `RAGBOT_LLM_*`, as the grounded
generator chooses); otherwise, or when the model cannot be reached, an extractive summary is built from
the exchanges themselves: deterministic, so a summary is always there to hand over.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from rag.errors import RagError
from rag.markdown import HEADING_MARK
from rag.settings import Settings

if TYPE_CHECKING:  # the Azure client is imported only when a chat model is configured
    from rag.azure.client import AzureOpenAIClient

log = logging.getLogger(__name__)

PROMPT_CHARS = 16_000
"""The transcript sent to the model at most; the latest exchanges are kept (they matter most)."""
SUMMARY_TOKENS = 350
TEXT_SUMMARY_CHARS = 600
QUOTE_CHARS = 160
LAST_ANSWER_CHARS = 200
SHOWN_SOURCES = 6
SYSTEM = (
    "You write hand-off notes for a help-desk agent who takes over a conversation from a bot. In at most "
    "six short sentences of plain text, say what the user needs, what the bot answered and from which "
    "sources, what it could not answer, and the feedback the user gave. Use only what the transcript "
    "says; do not add advice of your own."
)
_SPEAKER = re.compile(r"^\s*(user|you|question|q|bot|assistant|answer|a)\s*:\s*(.*)$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LINK = re.compile(r"\[([^\]\n]+)\]\((\S+?)\)")
_EMPHASIS = re.compile(r"(\*\*|__|`+)")
_HEADING = re.compile(HEADING_MARK, re.MULTILINE)
_NUMBERED = re.compile(r"^\[\d+\]\s*")


def plain(markdown: str) -> str:
    """An answer's Markdown as plain text: links as `text (url)`, no emphasis or heading marks."""
    text = _LINK.sub(
        lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)} ({m.group(2)})", markdown
    )
    return _HEADING.sub("", _EMPHASIS.sub("", text))


class Exchange(BaseModel):
    """One question and what came of it."""

    question: str
    answer: str = ""
    sources: list[str] = Field(default_factory=list, description="titles (and where they are) shown")
    refused: bool = Field(default=False, description="not answered from the knowledge base")
    feedback: list[str] = Field(default_factory=list, description='"dislike: comment", "like"')
    at: str | None = None


class Transcript(BaseModel):
    """What is summarized: the exchanges of a thread, or a free text (a file) with none."""

    exchanges: list[Exchange] = Field(default_factory=list)
    text: str = ""

    @classmethod
    def from_text(cls, text: str) -> Transcript:
        """`User: ...` / `Bot: ...` lines become exchanges; any other text is kept as it is."""
        exchanges: list[Exchange] = []
        current: Exchange | None = None
        speaker = ""
        for line in text.splitlines():
            match = _SPEAKER.match(line)
            if match:
                speaker = "user" if match.group(1).lower() in ("user", "you", "question", "q") else "bot"
                content = match.group(2).strip()
                if speaker == "user":
                    current = Exchange(question=content)
                    exchanges.append(current)
                elif current is not None:
                    current.answer = f"{current.answer}\n{content}".strip()
            elif current is not None and line.strip():
                if speaker == "user":
                    current.question = f"{current.question}\n{line.strip()}"
                else:
                    current.answer = f"{current.answer}\n{line.strip()}".strip()
        if exchanges:
            return cls(exchanges=exchanges)
        return cls(text=text.strip())

    @property
    def empty(self) -> bool:
        return not self.exchanges and not self.text

    def as_text(self, limit: int = PROMPT_CHARS) -> str:
        """The transcript as the model reads it, the latest exchanges kept when it is too long."""
        if not self.exchanges:
            return self.text[:limit]
        blocks: list[str] = []
        used = 0
        for number, exchange in reversed(list(enumerate(self.exchanges, start=1))):
            lines = [f"Question {number}: {exchange.question}"]
            if exchange.refused:
                lines.append("Bot: (could not answer from the knowledge base)")
            elif exchange.answer:
                lines.append(f"Bot: {exchange.answer}")
            if exchange.sources:
                lines.append("Sources shown: " + "; ".join(exchange.sources))
            lines.extend(f"User feedback: {item}" for item in exchange.feedback)
            block = "\n".join(lines)
            if blocks and used + len(block) > limit:
                break
            blocks.append(block[:limit])
            used += len(block)
        return "\n\n".join(reversed(blocks))


class Summary(BaseModel):
    text: str
    method: Literal["chat model", "extractive"]
    note: str = Field(default="", description="why the chat model was not used, when it was configured")


def _quote(text: str, limit: int = QUOTE_CHARS) -> str:
    flat = " ".join(text.split())
    return f'"{flat if len(flat) <= limit else flat[: limit - 1] + "…"}"'


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def extractive_summary(transcript: Transcript) -> str:
    """A summary built from the exchanges alone (or the lead of a free text): same input, same text."""
    if not transcript.exchanges:
        sentences = _SENTENCE_END.split(" ".join(transcript.text.split()))
        lead = ""
        for sentence in sentences:
            if lead and len(lead) + len(sentence) + 1 > TEXT_SUMMARY_CHARS:
                break
            lead = f"{lead} {sentence}".strip()
        return lead[:TEXT_SUMMARY_CHARS] or "The conversation is empty."
    exchanges = transcript.exchanges
    refused = [e for e in exchanges if e.refused]
    disliked = [e for e in exchanges if any(f.startswith("dislike") for f in e.feedback)]
    head = f"The user asked {_count(len(exchanges), 'question')}"
    if refused:
        head += f"; {len(refused)} could not be answered from the knowledge base"
    if disliked:
        head += f"; {_count(len(disliked), 'answer')} rated down"
    lines = [head + "."]
    lines.append(f"Latest question: {_quote(exchanges[-1].question)}")
    if refused:
        lines.append("Not answered: " + "; ".join(_quote(e.question) for e in refused[-3:]))
    for exchange in disliked[-3:]:
        comments = [f.split(":", 1)[1].strip() for f in exchange.feedback if ":" in f]
        said = f" (the user said: {_quote(comments[-1])})" if comments and comments[-1] else ""
        lines.append(f"Rated down: the answer to {_quote(exchange.question)}{said}")
    answered = [e for e in exchanges if not e.refused and e.answer]
    if answered:
        lines.append(f"Last answer given: {_quote(plain(answered[-1].answer), LAST_ANSWER_CHARS)}")
    sources = list(dict.fromkeys(_NUMBERED.sub("", s) for e in exchanges for s in e.sources))
    if sources:
        lines.append("Sources shown: " + "; ".join(sources[:SHOWN_SOURCES]))
    return "\n".join(lines)


async def summarize(
    transcript: Transcript, client: AzureOpenAIClient | None, *, deployment: str | None = None
) -> Summary:
    """The chat model's summary when `client` is given, else (or if the model fails) the extractive one."""
    if client is None or transcript.empty:
        return Summary(text=extractive_summary(transcript), method="extractive")
    body = {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": transcript.as_text()},
        ],
        "temperature": 0,
        "max_tokens": SUMMARY_TOKENS,
    }
    from rag.azure.responses import parse_completion

    try:
        text = parse_completion(await client.chat(body, deployment=deployment)).content.strip()
    except RagError as exc:
        log.warning("hand-off summary: the chat model failed, using the extractive summary: %s", exc)
        return Summary(
            text=extractive_summary(transcript),
            method="extractive",
            note=f"the chat model could not write it ({type(exc).__name__})",
        )
    if not text:
        return Summary(
            text=extractive_summary(transcript), method="extractive", note="the chat model wrote nothing"
        )
    return Summary(text=text, method="chat model")


def summary_client(settings: Settings) -> AzureOpenAIClient | None:
    """The chat model the grounded generator would use (`RAGBOT_GENERATOR`), or None for extractive."""
    from rag.azure.client import AzureOpenAIClient

    choice = settings.ragbot.generator
    if choice == "auto":
        if settings.openai.configured:
            choice = "azure"
        elif settings.ragbot.llm_base_url and settings.ragbot.llm_model:
            choice = "openai"
        else:
            return None
    if choice == "azure" and settings.openai.configured:
        return AzureOpenAIClient.from_settings(settings)
    if choice == "openai" and settings.ragbot.llm_base_url and settings.ragbot.llm_model:
        return AzureOpenAIClient.openai_compatible(settings)
    return None
