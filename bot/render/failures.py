"""What the user reads when no answer can be given: one specific, friendly sentence per failure."""

from __future__ import annotations

import math

from rag.errors import AuthError, ContentFiltered, DataSourceError, NotReady, Throttled, UpstreamUnavailable

NOT_IN_KNOWLEDGE_BASE = (
    "I couldn't find that in the knowledge base. Try asking in other words, or about another topic."
)
"""Shown for On Your Data's in-scope refusal (`Answer.refused`) instead of its technical wording."""

FILTERED_QUESTION = "I can't answer that: your message was blocked by the content filter. Please rephrase it."
FILTERED_ANSWER = "I can't show that answer: it was blocked by the content filter. Please ask in another way."
NO_ANSWER = "I couldn't put an answer together this time. Please try again."
UNEXPECTED = "Sorry, something went wrong on my side while answering. Please try again."


def retry_seconds(retry_after: float) -> int:
    """Whole seconds to wait, at least one."""
    return max(1, math.ceil(retry_after))


def failure_text(exc: BaseException) -> str:
    """The sentence for one typed error of `rag.errors` (anything else gets a generic apology)."""
    if isinstance(exc, ContentFiltered):
        return FILTERED_QUESTION if exc.source == "prompt" else FILTERED_ANSWER
    if isinstance(exc, Throttled):
        return (
            "I'm getting too many questions right now. "
            f"Please try again in {retry_seconds(exc.retry_after)} s."
        )
    if isinstance(exc, NotReady):
        return "I'm not ready yet: the knowledge base is still being prepared. Please try again later."
    if isinstance(exc, DataSourceError):
        return (
            "I can't search the knowledge base right now: it is missing or not set up correctly. "
            "Please let your administrator know."
        )
    if isinstance(exc, AuthError):
        return (
            "I can't reach the answer service: it refused my credentials. Please let your administrator know."
        )
    if isinstance(exc, UpstreamUnavailable):
        return "The answer service is unavailable right now. Please try again in a minute."
    return UNEXPECTED
