"""Answers rated down, as evaluation rows: the question a user found badly answered becomes a question
`ragbot eval` asks again, once someone wrote down the right answer (`truth`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from pydantic import Field

from bot.feedback import FeedbackRecord
from ragbot.evaluation.questions import EvalQuestion, read_questions
from ragbot.gaps import source_name


class FeedbackRow(EvalQuestion):
    """An evaluation row with what the user saw, for whoever writes its `truth`."""

    rated_answer: str = ""
    sources_shown: list[str] = Field(default_factory=list)
    comments: list[str] = Field(default_factory=list)
    rated_at: str = ""


def feedback_rows(feedback: Iterable[FeedbackRecord], since: str | None = None) -> list[FeedbackRow]:
    """One row per answer rated down (several users' ratings of one answer make one row), with an id
    that stays the same on every export."""
    rows: dict[str, FeedbackRow] = {}
    for f in feedback:
        if f.reaction != "dislike" or not f.question or (since and f.at < since):
            continue
        ident = "feedback-" + hashlib.sha256(f"{f.channel_id}|{f.reply_to_id}".encode()).hexdigest()[:12]
        row = rows.setdefault(
            ident,
            FeedbackRow(
                id=ident,
                question=f.question,
                rated_answer=f.answer,
                sources_shown=[source_name(c) for c in f.citations],
                rated_at=f.at,
            ),
        )
        if f.comment:
            row.comments.append(f.comment)
    return list(rows.values())


def append_rows(path: Path, rows: Iterable[FeedbackRow]) -> int:
    """Append the rows whose id `path` does not hold yet (the rest of the file is left as it is);
    returns how many were added. A file that is not a questions file raises `EvalFileError`."""
    known = {q.id for q in read_questions(path, allow_empty=True)} if path.exists() else set()
    new = [row for row in rows if row.id not in known]
    with path.open("a", encoding="utf-8") as out:
        out.writelines(row.model_dump_json() + "\n" for row in new)
    return len(new)
