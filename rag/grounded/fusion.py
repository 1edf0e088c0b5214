"""Weighted reciprocal-rank fusion: one ranking from several (keyword and vector lists, several queries).

Ranks fuse, raw scores do not (BM25 and cosine live on different scales); each list's weight says how
much its ranks count. The absolute relevance (`rerank_score`) of a chunk is the best any list gave it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.documents import ScoredChunk

RRF_K = 60
"""The usual damping constant: rank 1 scores 1/61, rank 10 scores 1/70."""


def fuse(lists: Sequence[tuple[Sequence[ScoredChunk], float]], *, k: int = RRF_K) -> list[ScoredChunk]:
    """Chunks of all `(hits, weight)` lists ranked by the sum of `weight / (k + rank)`.

    Each fused hit keeps the query of the list that ranked it best and the highest relevance seen.
    """
    fused: dict[str, ScoredChunk] = {}
    best_part: dict[str, float] = {}
    for hits, weight in lists:
        for rank, hit in enumerate(hits, start=1):
            part = weight / (k + rank)
            key = hit.chunk.id
            current = fused.get(key)
            if current is None:
                fused[key] = hit.model_copy(update={"score": part})
                best_part[key] = part
                continue
            relevance = _max_optional(current.rerank_score, hit.rerank_score)
            update: dict[str, object] = {"score": current.score + part, "rerank_score": relevance}
            if part > best_part[key]:
                best_part[key] = part
                update["query"] = hit.query
            fused[key] = current.model_copy(update=update)
    return sorted(fused.values(), key=lambda h: h.score, reverse=True)


def _max_optional(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
