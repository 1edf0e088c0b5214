"""Knowledge gaps: what the bot could not answer well, grouped by meaning, most frequent first.

Three signals from the state store: refused questions (`bot.refusals`), answers rated down and comments
left on any rating (`bot.feedback`). Each becomes one item keyed by its question; items are grouped with
the embedding model (cosine similarity of a question to a group's centroid, greedily, in time order), so
"when is payroll run" and "where is the payroll calendar?" land in one gap a knowledge-base owner can
write one article for.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from bot.feedback import FeedbackRecord
from bot.refusals import RefusalRecord
from rag.contract import REFUSAL, Citation
from rag.embedding import Embedder

Kind = Literal["refused", "disliked", "comment"]
DEFAULT_SIMILARITY = 0.6
"""all-MiniLM-L6-v2: paraphrases of one question score 0.6-0.9 against each other, different topics of
one help desk below 0.3."""
MAX_ITEMS = 5_000
"""Newest items grouped in one run, so a report takes under a minute and bounded memory however long
the store has collected (`--since` picks the period)."""
EXAMPLES = 3
SOURCES = 5


class GapItem(BaseModel):
    kind: Kind
    question: str
    comment: str = ""
    sources: list[str] = Field(default_factory=list)
    at: str


class Gap(BaseModel):
    rank: int
    count: int
    question: str = Field(description="the question nearest the group's centre")
    refused: int = 0
    disliked: int = 0
    comments: int = 0
    examples: list[str] = Field(default_factory=list, description="other wordings, most frequent first")
    comment_texts: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list, description="sources shown, most often first")
    first_at: str
    last_at: str


def source_name(citation: Citation) -> str:
    name = citation.filepath or citation.url or citation.title or "?"
    return f"{name}#page={citation.page}" if citation.page else name


def gather(
    refusals: Iterable[RefusalRecord], feedback: Iterable[FeedbackRecord], since: str | None = None
) -> list[GapItem]:
    """The items to group, oldest first, at or after `since` (an ISO date or timestamp, UTC). A thumbs-down
    on a refusal is the same gap as the refusal: its comment joins the refusal's item."""
    items: list[GapItem] = []
    refused: dict[tuple[str, str, str], GapItem] = {}
    for r in refusals:
        item = GapItem(
            kind="refused", question=r.question, sources=[source_name(c) for c in r.citations], at=r.at
        )
        items.append(item)
        refused[(r.channel_id, r.conversation_id, r.question)] = item
    for f in feedback:
        if f.reaction != "dislike" and not f.comment:
            continue
        same = refused.get((f.channel_id, f.conversation_id, f.question))
        if same is not None and f.answer.strip() == REFUSAL:
            if f.comment and not same.comment:
                same.comment = f.comment
            continue
        items.append(
            GapItem(
                kind="disliked" if f.reaction == "dislike" else "comment",
                question=f.question or f.comment,
                comment=f.comment,
                sources=[source_name(c) for c in f.citations],
                at=f.at,
            )
        )
    if since:
        items = [i for i in items if i.at >= since]
    items.sort(key=lambda i: i.at)
    return items[-MAX_ITEMS:]


def cluster(vectors: np.ndarray, similarity: float) -> list[list[int]]:
    """Greedy grouping of L2-normalised rows: each joins the group whose centroid is nearest when the
    cosine similarity reaches `similarity`, else starts a group. Centroids are kept normalised and only
    the joined one is recomputed, so a row costs one product with the centroids so far."""
    groups: list[list[int]] = []
    sums = np.zeros_like(vectors, dtype=np.float32)
    centroids = np.zeros_like(vectors, dtype=np.float32)
    for i, vector in enumerate(vectors):
        if groups:
            scores = centroids[: len(groups)] @ vector
            best = int(np.argmax(scores))
            if scores[best] >= similarity:
                groups[best].append(i)
                sums[best] += vector
                centroids[best] = sums[best] / max(float(np.linalg.norm(sums[best])), 1e-12)
                continue
        sums[len(groups)] = centroids[len(groups)] = vector
        groups.append([i])
    return groups


async def find_gaps(
    items: Sequence[GapItem], embedder: Embedder, similarity: float = DEFAULT_SIMILARITY
) -> list[Gap]:
    """Items grouped by meaning, largest group first (ties: most recent first)."""
    if not items:
        return []
    vectors = np.asarray(await embedder.embed([i.question for i in items]), dtype=np.float32)
    gaps = []
    for members in cluster(vectors, similarity):
        group = [items[i] for i in members]
        centre = vectors[members].mean(axis=0)
        central = group[int(np.argmax(vectors[members] @ centre))].question
        wordings = Counter(" ".join(i.question.split()) for i in group)
        wordings.pop(" ".join(central.split()), None)
        kinds = Counter(i.kind for i in group)
        gaps.append(
            Gap(
                rank=0,
                count=len(group),
                question=central,
                refused=kinds["refused"],
                disliked=kinds["disliked"],
                comments=sum(bool(i.comment) for i in group),
                examples=[text for text, _ in wordings.most_common(EXAMPLES)],
                comment_texts=list(dict.fromkeys(i.comment for i in reversed(group) if i.comment))[:EXAMPLES],
                sources=[s for s, _ in Counter(s for i in group for s in i.sources).most_common(SOURCES)],
                first_at=group[0].at,
                last_at=group[-1].at,
            )
        )
    gaps.sort(key=lambda g: g.last_at, reverse=True)
    gaps.sort(key=lambda g: g.count, reverse=True)  # stable: equal counts stay most recent first
    return [g.model_copy(update={"rank": n}) for n, g in enumerate(gaps, 1)]


CSV_FIELDS = (
    "rank",
    "count",
    "refused",
    "disliked",
    "comments",
    "question",
    "examples",
    "comment_texts",
    "sources",
    "first_at",
    "last_at",
)


def to_csv(gaps: Iterable[Gap]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for gap in gaps:
        row = gap.model_dump()
        writer.writerow(
            {name: "; ".join(v) if isinstance(v := row[name], list) else v for name in CSV_FIELDS}
        )
    return out.getvalue()


def to_json(gaps: Iterable[Gap]) -> str:
    return json.dumps([g.model_dump() for g in gaps], indent=2, ensure_ascii=False) + "\n"


def to_markdown(gaps: Sequence[Gap]) -> str:
    if not gaps:
        return "No knowledge gaps: no refused questions, thumbs-down or comments in this period.\n"
    lines = ["# Knowledge gaps", "", "| # | count | refused | rated down | question | sources shown |"]
    lines.append("|---|---|---|---|---|---|")
    for g in gaps:
        sources = ", ".join(f"`{s}`" for s in g.sources) or "none"
        lines.append(
            f"| {g.rank} | {g.count} | {g.refused} | {g.disliked} | {_cell(g.question)} | {sources} |"
        )
    for g in gaps:
        if not (g.examples or g.comment_texts):
            continue
        lines += ["", f"## {g.rank}. {_cell(g.question)}", ""]
        lines += [f"- asked as: {_cell(text)}" for text in g.examples]
        lines += [f"- comment: {_cell(text)}" for text in g.comment_texts]
        lines.append(f"- seen {g.first_at} to {g.last_at}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
