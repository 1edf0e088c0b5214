"""Questions the bot refused ("not in the knowledge base"), kept across conversations for `ragbot gaps`.

Thread memory leaves refusals out (they would teach the next answer nothing), so each refusal is its
own document in the same store, under `refusal|<channel>|<conversation>|<activity>`, written once by the
replica that answered and listed by that prefix: every backend's `put` and `scan` serve it as they serve
feedback.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from bot.memory import STORED_CITATION_CHARS
from bot.state import StateStore
from rag.contract import Citation

PREFIX = "refusal|"


class RefusalRecord(BaseModel):
    question: str
    channel_id: str
    conversation_id: str
    activity_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    """The question's activity id (a redelivery overwrites the same record); random when it has none."""
    user_id: str | None = None
    tenant_id: str | None = None
    intent: list[str] = Field(default_factory=list, description="the searches that found nothing usable")
    citations: list[Citation] = Field(default_factory=list, description="sources shown with the refusal")
    at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.channel_id}|{self.conversation_id}|{self.activity_id}"


async def save_refusal(store: StateStore, record: RefusalRecord) -> None:
    """One writer per record (the replica that answered): no eTag needed. Citation texts are cut to an
    excerpt, as thread memory keeps them: the report names sources, it does not quote them."""
    short = [c.model_copy(update={"content": c.content[:STORED_CITATION_CHARS]}) for c in record.citations]
    await store.put(record.key, record.model_copy(update={"citations": short}).model_dump_json())


async def list_refusals(store: StateStore) -> list[RefusalRecord]:
    """Every refusal in the store, oldest first."""
    records = [RefusalRecord.model_validate_json(doc) for _, doc in await store.scan(PREFIX)]
    return sorted(records, key=lambda r: r.at)
