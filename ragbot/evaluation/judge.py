"""Groundedness and relevance, 1-5, judged by the configured chat model (the one answering and
summaries use: Azure OpenAI or an OpenAI-compatible endpoint, `rag.summary.summary_client`) through the
shared client: same auth, retries and rate limit as answering.

A score of 4 or 5 passes, as in the azure-search-openai-demo evaluator's summaries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, NamedTuple

from rag.azure.client import AzureOpenAIClient
from rag.azure.responses import parse_completion
from rag.contract import Citation
from rag.errors import RagError

PASSING = 4
SOURCE_CHARS = 2000
"""Of each source shown to the judge: enough to check a claim, bounded so a prompt stays small."""
Metric = Literal["groundedness", "relevance"]
_SCORE = re.compile(r"\b([1-5])\b")

INSTRUCTIONS: dict[Metric, str] = {
    "groundedness": (
        "You check answers of a help-desk assistant against the sources it was given. Rate how well "
        "the ANSWER is supported by the SOURCES, from 1 to 5: 5 when every statement in it can be found "
        "in the sources, 4 when nearly all can and nothing contradicts them, 3 when some statements are "
        "supported and some are not, 2 when most are not, 1 when it contradicts the sources or has no "
        "support at all. Judge support only, not style. Reply with the number alone."
    ),
    "relevance": (
        "You check answers of a help-desk assistant. Rate how well the ANSWER responds to the "
        "QUESTION, from 1 to 5: 5 when it answers exactly what was asked, completely, 4 when it answers "
        "it with small omissions or extra material, 3 when it answers part of it, 2 when it is mostly "
        "about something else, 1 when it does not address the question. Reply with the number alone."
    ),
}


class Verdict(NamedTuple):
    score: int | None
    problem: str | None = None


def prompt(metric: Metric, question: str, answer: str, sources: Sequence[Citation]) -> list[dict[str, str]]:
    if metric == "groundedness":
        shown = "\n\n".join(f"[{n}] {c.content[:SOURCE_CHARS]}" for n, c in enumerate(sources, 1))
        user = f"SOURCES:\n{shown or '(none)'}\n\nANSWER:\n{answer}"
    else:
        user = f"QUESTION:\n{question}\n\nANSWER:\n{answer}"
    return [{"role": "system", "content": INSTRUCTIONS[metric]}, {"role": "user", "content": user}]


class Judge:
    def __init__(self, client: AzureOpenAIClient) -> None:
        self.client = client

    async def score(self, metric: Metric, question: str, answer: str, sources: Sequence[Citation]) -> Verdict:
        """The model's 1-5 score, or None with the reason (a failed call or a reply without a score)."""
        body = {"messages": prompt(metric, question, answer, sources), "temperature": 0, "max_tokens": 5}
        try:
            reply = parse_completion(await self.client.chat(body)).content
        except RagError as exc:
            return Verdict(None, f"{metric}: {type(exc).__name__}: {exc}")
        found = _SCORE.search(reply)
        if found is None:
            return Verdict(None, f"{metric}: the judge replied without a 1-5 score: {reply[:80]!r}")
        return Verdict(int(found.group(1)))

    async def aclose(self) -> None:
        await self.client.aclose()
