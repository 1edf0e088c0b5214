"""Pure builders for the chat-completions request body: generation parameters, history, data source.

Kept free of I/O so each api-version's request can be checked against the official examples.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from rag.azure.dialects import Dialect, versions_with
from rag.contract import Asker, Citation, Turn
from rag.errors import ConfigError
from rag.settings import AzureOpenAISettings
from rag.tokens import count_tokens

REFUSED_WITH_DATA_SOURCES = ("logprobs", "top_logprobs")
"""Chat parameters Azure refuses alongside `data_sources` (On Your Data reference)."""


class ChatParams(BaseModel):
    """Generation parameters; None means "not sent"."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, int] | None = None
    user: str | None = None
    n: int | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None

    @classmethod
    def from_settings(cls, openai: AzureOpenAISettings) -> ChatParams:
        """temperature, top_p and max_tokens always (as the sample app does); the rest when set."""
        return cls(
            temperature=openai.temperature,
            top_p=openai.top_p,
            max_tokens=openai.max_tokens,
            stop=openai.stop_sequence or None,
            presence_penalty=openai.presence_penalty,
            frequency_penalty=openai.frequency_penalty,
            logit_bias=openai.logit_bias,
            n=openai.choices_count if openai.choices_count > 1 else None,
            seed=openai.seed,
            logprobs=openai.logprobs,
            top_logprobs=openai.top_logprobs,
        )

    def for_user(self, user: Asker | None) -> ChatParams:
        """With `user` set to a stable pseudonym of the asker (abuse monitoring without the raw id)."""
        who = user and (user.aad_object_id or user.user_id)
        if not who:
            return self
        return self.model_copy(update={"user": hashlib.sha256(who.encode()).hexdigest()[:32]})

    def wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    def check_dialect(self, dialect: Dialect) -> None:
        """Reject, before any call, the parameters `dialect`'s On Your Data schema does not declare."""
        undeclared = {"n": "AZURE_OPENAI_CHOICES_COUNT", "seed": "AZURE_OPENAI_SEED"}
        if dialect.choices_and_seed:
            return
        sent = [variable for name, variable in undeclared.items() if getattr(self, name) is not None]
        if sent:
            raise ConfigError(
                f"{', '.join(sent)} cannot be used with On Your Data at api-version {dialect.version}: its "
                f"extensions endpoint does not declare n or seed (they are accepted from "
                f"{versions_with('choices_and_seed')}); unset it or change AZURE_OPENAI_PREVIEW_API_VERSION"
            )

    def check_with_data_sources(self) -> None:
        """Reject, before any call, the parameters Azure refuses together with a data source."""
        refused = [name for name in REFUSED_WITH_DATA_SOURCES if getattr(self, name) is not None]
        if refused:
            names = ", ".join(f"AZURE_OPENAI_{name.upper()}" for name in refused)
            raise ConfigError(
                f"{names} cannot be used with On Your Data: Azure refuses {', '.join(refused)} alongside "
                "data_sources; unset it, or use RAGBOT_BACKEND=grounded"
            )


def encode_intent(intent: Sequence[str]) -> str | None:
    """The intent as the service returned it: one query as text, several as a JSON-encoded list."""
    if not intent:
        return None
    return intent[0] if len(intent) == 1 else json.dumps(list(intent), ensure_ascii=False)


def _citation_wire(citation: Citation) -> dict[str, Any]:
    return citation.model_dump(include={"content", "title", "url", "filepath", "chunk_id"}, exclude_none=True)


def turn_messages(turn: Turn, dialect: Dialect) -> list[dict[str, Any]]:
    """One stored turn as the messages `dialect` expects.

    Modern: an assistant message carries `context.intent`. Legacy: the tool message with the turn's
    citations and intent precedes the assistant message, as the extensions endpoint returned it.
    """
    message: dict[str, Any] = {"role": turn.role, "content": turn.content}
    if turn.role != "assistant":
        return [message]
    intent = encode_intent(turn.intent)
    if not dialect.legacy:
        if intent:
            message["context"] = {"intent": intent}
        return [message]
    if not turn.citations and not intent:
        return [message]
    tool = {"citations": [_citation_wire(c) for c in turn.citations], "intent": intent or ""}
    return [{"role": "tool", "content": json.dumps(tool, ensure_ascii=False)}, message]


def _tokens(messages: list[dict[str, Any]]) -> int:
    return sum(
        count_tokens(str(m["content"])) + count_tokens(json.dumps(m.get("context", ""))) for m in messages
    )


def history_messages(history: Sequence[Turn], dialect: Dialect, budget: int) -> list[dict[str, Any]]:
    """The newest turns whose messages fit in `budget` tokens, oldest dropped first.

    A cut never leaves an assistant turn without the user turn it answered.
    """
    kept: list[list[dict[str, Any]]] = []
    used = 0
    for turn in reversed(history):
        messages = turn_messages(turn, dialect)
        cost = _tokens(messages)
        if used + cost > budget:
            break
        kept.append(messages)
        used += cost
    ordered = [m for group in reversed(kept) for m in group]
    while ordered and ordered[0]["role"] != "user":
        ordered.pop(0)
    return ordered


def build_request(
    dialect: Dialect,
    *,
    question: str,
    history: Sequence[dict[str, Any]] = (),
    data_source: dict[str, Any] | None = None,
    chat: ChatParams | None = None,
    system_prompt: str | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    """A chat-completions body: optional system message, history, the question, the data source."""
    chat = chat or ChatParams()
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages += [*history, {"role": "user", "content": question}]
    body: dict[str, Any] = {"messages": messages}
    if data_source is not None:
        chat.check_with_data_sources()
        body["dataSources" if dialect.legacy else "data_sources"] = [data_source]
    body.update(chat.wire())
    if stream:
        body["stream"] = True
        if dialect.stream_usage:
            body["stream_options"] = {"include_usage": True}
    return body
