"""Thumbs up/down and comments from Teams' `message/submitAction` invoke, stored with the rated answer.

One record per rated message and user (a second rating by the same user replaces the first), kept in
the same store as thread memory under `feedback|<channel>|<replyToId>|<user>`, listed by that prefix.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from bot.memory import RatedAnswer
from bot.state import StateStore
from rag.contract import Citation

PREFIX = "feedback|"
CSV_FIELDS = (
    "at",
    "reaction",
    "comment",
    "question",
    "answer",
    "intent",
    "citations",
    "channel_id",
    "tenant_id",
    "user_id",
    "conversation_id",
    "reply_to_id",
)


class BadFeedback(ValueError):
    """The invoke's `value` is not the shape Teams sends."""


class FeedbackRecord(BaseModel):
    reply_to_id: str
    reaction: str
    comment: str = ""
    channel_id: str
    conversation_id: str
    user_id: str
    tenant_id: str | None = None
    at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    question: str = ""
    answer: str = ""
    citations: list[Citation] = Field(default_factory=list)
    intent: list[str] = Field(default_factory=list)
    answered_at: str | None = None

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.channel_id}|{self.reply_to_id}|{self.user_id}"

    def csv_row(self) -> dict[str, str]:
        row = self.model_dump(include=set(CSV_FIELDS))
        row["intent"] = "; ".join(self.intent)
        row["citations"] = "; ".join(c.url or c.filepath or c.title or "" for c in self.citations)
        return {name: "" if row.get(name) is None else str(row[name]) for name in CSV_FIELDS}


def parse_submit_action(value: object) -> tuple[str, str]:
    """(reaction, comment) from `{"actionName": "feedback", "actionValue": {reaction, feedback}}`.

    `feedback` is a JSON string (`{"feedbackText": ...}`) in Teams' default form; a plain string is
    taken as the comment.
    """
    if not isinstance(value, Mapping) or value.get("actionName") != "feedback":
        raise BadFeedback("value.actionName must be 'feedback'")
    action = value.get("actionValue")
    if not isinstance(action, Mapping):
        raise BadFeedback("value.actionValue must be an object")
    reaction = action.get("reaction")
    if reaction not in ("like", "dislike"):
        raise BadFeedback("value.actionValue.reaction must be 'like' or 'dislike'")
    raw = action.get("feedback") or ""
    comment: Any = raw
    if isinstance(raw, str) and raw.strip().startswith("{"):
        try:
            comment = json.loads(raw).get("feedbackText", "")
        except (ValueError, AttributeError):
            comment = raw
    elif isinstance(raw, Mapping):
        comment = raw.get("feedbackText", "")
    return str(reaction), str(comment or "").strip()


def with_answer(record: FeedbackRecord, answer: RatedAnswer | None) -> FeedbackRecord:
    if answer is None:
        return record
    return record.model_copy(
        update={
            "question": answer.question,
            "answer": answer.answer,
            "citations": answer.citations,
            "intent": answer.intent,
            "answered_at": answer.at,
        }
    )


async def save_feedback(store: StateStore, record: FeedbackRecord) -> None:
    """A user's second rating of the same answer replaces the first: last write wins, no eTag needed."""
    await store.put(record.key, record.model_dump_json())


async def list_feedback(store: StateStore) -> list[FeedbackRecord]:
    """Every rating in the store, oldest first."""
    records = [FeedbackRecord.model_validate_json(doc) for _, doc in await store.scan(PREFIX)]
    return sorted(records, key=lambda r: r.at)


def to_csv(records: Iterable[FeedbackRecord]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(record.csv_row())
    return out.getvalue()


def to_json(records: Iterable[FeedbackRecord]) -> str:
    return json.dumps([r.model_dump(mode="json") for r in records], indent=2, ensure_ascii=False) + "\n"
