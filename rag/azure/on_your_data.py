"""The On Your Data backend: Azure OpenAI chat completions grounded on an `azure_search` data source.

Everything the configured api-version cannot express is refused at start-up (see
:meth:`AzureSearchSource.check`); per turn, only the history, the question and the asker (security
trimming: the `filter`) vary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from rag.azure.chat_request import ChatParams, build_request, history_messages
from rag.azure.client import AzureOpenAIClient
from rag.azure.data_source import AzureSearchSource, data_source
from rag.azure.dialects import Dialect, dialect
from rag.azure.responses import StreamDecoder, parse_completion
from rag.azure.security import access_filter, combine_filters
from rag.contract import Answer, AnswerDelta, Asker, Turn
from rag.errors import AuthError, DataSourceError
from rag.settings import Settings


class OnYourDataAnswerer:
    name = "on_your_data"

    def __init__(
        self,
        *,
        client: AzureOpenAIClient,
        api_dialect: Dialect,
        source: AzureSearchSource,
        chat: ChatParams,
        history_tokens: int,
    ) -> None:
        source.check(api_dialect)
        chat.check_dialect(api_dialect)
        chat.check_with_data_sources()
        self.client, self.dialect, self.source, self.chat = client, api_dialect, source, chat
        self.history_tokens = history_tokens
        self._problem: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OnYourDataAnswerer:
        api_dialect = dialect(settings.openai.preview_api_version)
        source = AzureSearchSource.from_settings(settings)
        chat = ChatParams.from_settings(settings.openai)
        return cls(
            client=AzureOpenAIClient.from_settings(settings),
            api_dialect=api_dialect,
            source=source,
            chat=chat,
            history_tokens=settings.ragbot.history_tokens,
        )

    def request(
        self, history: Sequence[Turn], question: str, user: Asker | None = None, *, stream: bool = False
    ) -> dict[str, Any]:
        """The body this turn sends (pure: no I/O)."""
        trimming = access_filter(user, self.source.permitted_groups_field, self.source.permitted_users_field)
        search_filter = combine_filters(self.source.filter, trimming)
        carries_role = self.dialect.role_information
        return build_request(
            self.dialect,
            question=question,
            history=history_messages(history, self.dialect, self.history_tokens),
            data_source=data_source(self.source, self.dialect, search_filter),
            chat=self.chat.for_user(user),
            system_prompt=None if carries_role else self.source.role_information,
            stream=stream,
        )

    async def answer(self, history: Sequence[Turn], question: str, user: Asker | None = None) -> Answer:
        body = self.request(history, question, user)
        try:
            payload = await self.client.chat(body, route=self.dialect.chat_path)
        except (AuthError, DataSourceError) as exc:
            self._problem = str(exc)
            raise
        self._problem = None
        return parse_completion(payload)

    async def stream(
        self, history: Sequence[Turn], question: str, user: Asker | None = None
    ) -> AsyncIterator[AnswerDelta]:
        body = self.request(history, question, user, stream=True)
        decoder = StreamDecoder()
        try:
            async for chunk in self.client.chat_stream(body, route=self.dialect.chat_path):
                for delta in decoder.feed(chunk):
                    yield delta
        except (AuthError, DataSourceError) as exc:
            self._problem = str(exc)
            raise
        self._problem = None
        for delta in decoder.finish():
            yield delta

    async def ready(self) -> str | None:
        """None, or the credential / data-source problem the last call ran into."""
        return self._problem

    async def aclose(self) -> None:
        await self.client.aclose()
