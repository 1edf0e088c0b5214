"""A thread as the hand-off summarizes it: the answers the bot remembers, with the feedback given on them.

Read from the state seam: the thread's document (its recent answers, refusals included, with their
citations) and the ratings stored under `feedback|<channel>|<answer id>|`. Nothing is written.
"""

from __future__ import annotations

import asyncio
import re

from bot.feedback import PREFIX, FeedbackRecord
from bot.memory import RatedAnswer, ThreadState
from bot.state import StateStore
from rag.contract import DOC_MARKER, Citation
from rag.summary import Exchange, Transcript

_REPEATED = re.compile(r"(\[\d+\])(?:\1)+")
"""`[1][1]`: two chunks of one source cited together."""


def source_name(citation: Citation) -> str:
    where = citation.url or citation.filepath
    title = citation.title or where or "untitled"
    return f"{title} ({where})" if where and where != title else title


def exchange(answer: RatedAnswer, ratings: list[FeedbackRecord]) -> Exchange:
    """`[docN]` markers renumbered `[1]`, `[2]`... by first use, one number per source (chunks of the
    same document merge), with only the cited sources listed."""
    names: list[str] = []
    for match in DOC_MARKER.finditer(answer.answer):
        number = int(match.group(1))
        if 1 <= number <= len(answer.citations):
            name = source_name(answer.citations[number - 1])
            if name not in names:
                names.append(name)

    def renumber(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if not 1 <= number <= len(answer.citations):
            return ""
        return f"[{names.index(source_name(answer.citations[number - 1])) + 1}]"

    text = _REPEATED.sub(r"\1", DOC_MARKER.sub(renumber, answer.answer))
    feedback = [f"{r.reaction}: {r.comment}" if r.comment else r.reaction for r in ratings]
    return Exchange(
        question=answer.question,
        answer="" if answer.refused else text,
        sources=[f"[{i}] {name}" for i, name in enumerate(names, start=1)],
        refused=answer.refused,
        feedback=feedback,
        at=answer.at,
    )


async def ratings_of(store: StateStore, channel_id: str, answer_id: str) -> list[FeedbackRecord]:
    found = await store.scan(f"{PREFIX}{channel_id}|{answer_id}|")
    return sorted((FeedbackRecord.model_validate_json(doc) for _, doc in found), key=lambda r: r.at)


async def thread_transcript(store: StateStore, state: ThreadState, channel_id: str) -> Transcript:
    """The thread's remembered answers, oldest first, each with the ratings users gave it."""
    ratings = await asyncio.gather(*(ratings_of(store, channel_id, a.activity_id) for a in state.answers))
    return Transcript(exchanges=[exchange(a, r) for a, r in zip(state.answers, ratings, strict=True)])
