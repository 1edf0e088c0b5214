"""strictness (1-5) and top_n_documents: which retrieved documents the answer may use.

A document survives strictness `s` when its relevance (the retriever's 0-1 `rerank_score`) is at least
`CUTS[s].floor` **and** at least `CUTS[s].ratio` times the best relevance of the turn. The floor removes
documents that match nothing (and so makes in_scope refuse); the ratio removes the tail of weak
neighbours when a strong match exists. Documents without a relevance (query types that give none) are
judged by the ratio on their ranking score only. Survivors are then capped at top_n, in rank order.
On Your Data reports the dropped ones with `filter_reason` "score" (strictness) or "rerank" (top_n).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.documents import ScoredChunk


@dataclass(frozen=True)
class Cut:
    floor: float
    ratio: float


CUTS: dict[int, Cut] = {
    1: Cut(floor=0.30, ratio=0.40),
    2: Cut(floor=0.34, ratio=0.50),
    3: Cut(floor=0.41, ratio=0.60),
    4: Cut(floor=0.44, ratio=0.75),
    5: Cut(floor=0.48, ratio=0.90),
}
"""Tuned on samples/helpdesk/questions.jsonl with the local MiniLM cosine (see rag/grounded/README.md)."""


@dataclass
class Selection:
    kept: list[ScoredChunk] = field(default_factory=list)
    below_strictness: list[ScoredChunk] = field(default_factory=list)
    beyond_top_n: list[ScoredChunk] = field(default_factory=list)


def select(hits: Sequence[ScoredChunk], *, strictness: int, top_n: int) -> Selection:
    """Split ranked hits into kept (at most `top_n`), dropped by strictness, and dropped by the cap."""
    if strictness not in CUTS:
        raise ValueError(f"strictness must be 1-5, got {strictness}")
    cut = CUTS[strictness]
    best_relevance = max((h.rerank_score for h in hits if h.rerank_score is not None), default=None)
    best_score = max((h.score for h in hits), default=0.0)
    selection = Selection()
    for hit in hits:
        if hit.rerank_score is not None and best_relevance is not None:
            strong = hit.rerank_score >= cut.floor and hit.rerank_score >= cut.ratio * best_relevance
        else:
            strong = hit.score >= cut.ratio * best_score
        if not strong:
            selection.below_strictness.append(hit)
        elif len(selection.kept) < top_n:
            selection.kept.append(hit)
        else:
            selection.beyond_top_n.append(hit)
    return selection
