"""KnowledgeBaseRetriever: the grounded pipeline's retriever over an Azure AI Search knowledge base
(agentic retrieval, REST api-version 2026-04-01, through azure-search-documents'
KnowledgeBaseRetrievalClient).

Each search query of the turn (already made standalone by the pipeline's rewriter) is sent as one
`semantic` intent to `POST /knowledgebases('{name}')/retrieve`, with the knowledge source's parameters
built from the same knobs as the other retrievers:

- strictness -> `rerankerThreshold` (the semantic ranker's 0-4 scale), from :data:`RERANKER_THRESHOLDS`:
  the floor of `rag.grounded.strictness.CUTS` times 4, so the service drops nothing the client-side cut
  would keep. `AZURE_SEARCH_RERANKER_THRESHOLD` overrides it.

  | strictness | 1 | 2 | 3 | 4 | 5 |
  | --- | --- | --- | --- | --- | --- |
  | rerankerThreshold | 1.2 | 1.36 | 1.64 | 1.76 | 1.92 |

- `top` (the pipeline's search depth; top_n_documents is applied after fusion) caps the references used;
- `AZURE_SEARCH_FILTER` and-ed with the security-trimming clause for the asker -> `filterAddOn` (the
  clause the index search and On Your Data send, `rag.azure.security`; with a groups or users field
  configured an anonymous asker gets the public documents' clause, never no filter, and references from
  the knowledge base's other knowledge sources, which nothing trims, are dropped);
- `includeReferenceSourceData`: each reference's `sourceData` is mapped with the index's fields
  (:class:`~rag.index_spec.IndexSpec`) to the citation's title, url, filepath, content and chunk id;
  its `rerankerScore` / 4 is the relevance strictness cuts on;
- `includeActivity`: each reference's query is the `search` its activity record says the service ran,
  which the pipeline reports as the answer's intent;
- `maxRuntimeInSeconds` is `RAGBOT_REQUEST_TIMEOUT`; `maxOutputSizeInTokens` is
  `AZURE_SEARCH_MAX_OUTPUT_TOKENS` when set.

A 206 (partial results) answers from what came back; the failed knowledge source is named in one WARNING.
"""

from __future__ import annotations

import logging
from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError
from azure.search.documents.knowledgebases.aio import KnowledgeBaseRetrievalClient
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from rag.azure.failures import search_error
from rag.azure.security import combine_filters
from rag.contract import Asker
from rag.documents import Chunk, ScoredChunk
from rag.errors import AuthError, DataSourceError, UpstreamUnavailable
from rag.grounded.strictness import CUTS
from rag.index_spec import IndexSpec

log = logging.getLogger(__name__)

API_VERSION = "2026-04-01"
RERANKER_MAX = 4.0
RERANKER_THRESHOLDS: dict[int, float] = {s: round(cut.floor * RERANKER_MAX, 2) for s, cut in CUTS.items()}


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class _ErrorDetail(_Wire):
    code: str | None = None
    message: str | None = None


class _SearchArguments(_Wire):
    search: str | None = None


class _Activity(_Wire):
    id: int
    type: str
    knowledge_source_name: str | None = None
    search_index_arguments: _SearchArguments | None = None
    error: _ErrorDetail | None = None
    elapsed_ms: int | None = None
    reasoning_tokens: int | None = None  # agenticReasoning records: what the retrieval itself used


class _Reference(_Wire):
    type: str
    id: str
    activity_source: int | None = None
    source_data: dict[str, Any] | None = None
    reranker_score: float | None = None
    doc_key: str | None = None
    url: str | None = None  # web references
    title: str | None = None
    blob_url: str | None = None  # azureBlob references
    doc_url: str | None = None  # indexedOneLake references


class RetrievalResponse(_Wire):
    """The parts of a retrieve response the pipeline uses (the service's own `response` text is not)."""

    activity: list[_Activity] = Field(default_factory=list)
    references: list[_Reference] = Field(default_factory=list)


class KnowledgeBaseRetriever:
    """Retrieves from one knowledge source of one Azure AI Search knowledge base."""

    name = "knowledge_base"

    def __init__(
        self,
        *,
        endpoint: str,
        knowledge_base: str,
        knowledge_source: str,
        spec: IndexSpec,
        credential: AzureKeyCredential | AsyncTokenCredential,
        strictness: int = 3,
        reranker_threshold: float | None = None,
        search_filter: str | None = None,
        max_runtime: float | None = None,
        max_output_tokens: int | None = None,
        **client_options: Any,
    ) -> None:
        self.knowledge_base, self.knowledge_source, self.spec = knowledge_base, knowledge_source, spec
        self.reranker_threshold = (
            reranker_threshold if reranker_threshold is not None else RERANKER_THRESHOLDS[strictness]
        )
        self.search_filter = search_filter
        self.max_runtime = max(1, round(max_runtime)) if max_runtime else None
        self.max_output_tokens = max_output_tokens
        self._problem: str | None = None
        self._client = KnowledgeBaseRetrievalClient(
            endpoint,
            credential,
            knowledge_base_name=knowledge_base,
            api_version=API_VERSION,
            **client_options,
        )

    def request(self, query: str, asker: Asker | None = None) -> dict[str, Any]:
        """The retrieve body for one query (pure). With a groups or users field configured, trimming is
        never off: an anonymous asker (None) gets the public documents' clause, never no filter."""
        trimming = self.spec.access_filter(asker)
        source: dict[str, Any] = {
            "kind": "searchIndex",
            "knowledgeSourceName": self.knowledge_source,
            "includeReferences": True,
            "includeReferenceSourceData": True,
            "rerankerThreshold": self.reranker_threshold,
        }
        add_on = combine_filters(self.search_filter, trimming)
        if add_on:
            source["filterAddOn"] = add_on
        body: dict[str, Any] = {"intents": [{"type": "semantic", "search": query}], "includeActivity": True}
        if self.max_runtime:
            body["maxRuntimeInSeconds"] = self.max_runtime
        if self.max_output_tokens:
            body["maxOutputSizeInTokens"] = self.max_output_tokens
        body["knowledgeSourceParams"] = [source]
        return body

    async def retrieve(self, query: str, *, top: int, asker: Asker | None = None) -> list[ScoredChunk]:
        try:
            status, payload = await self._client.retrieve(
                self.request(query, asker),
                cls=lambda pipeline, _, __: (
                    pipeline.http_response.status_code,
                    pipeline.http_response.json(),
                ),
            )
        except AzureError as exc:
            failure = search_error(exc, f"knowledge base {self.knowledge_base!r}")
            if isinstance(failure, AuthError | DataSourceError):
                self._problem = str(failure)
            raise failure from exc
        except ValueError as exc:
            raise UpstreamUnavailable(
                f"the knowledge base answered something other than JSON: {exc}"
            ) from exc
        self._problem = None
        return self.hits(RetrievalResponse.model_validate(payload), query, top=top, partial=status == 206)

    def hits(
        self, response: RetrievalResponse, query: str, *, top: int, partial: bool = False
    ) -> list[ScoredChunk]:
        """References as hits, best reranker score first, at most `top`; failed sources are logged."""
        failed = [a for a in response.activity if a.error is not None]
        for activity in failed:
            assert activity.error is not None
            log.warning(
                "knowledge base %r: knowledge source %r failed (%s: %s); answering from what came back",
                self.knowledge_base,
                activity.knowledge_source_name or activity.type,
                activity.error.code or "error",
                activity.error.message or "no details",
            )
        if partial and not failed:
            log.warning(
                "knowledge base %r returned partial results; answering from what came back",
                self.knowledge_base,
            )
        log.debug(
            "knowledge base %r: %d activity records, %d ms, %d reasoning tokens, %d references",
            self.knowledge_base,
            len(response.activity),
            sum(a.elapsed_ms or 0 for a in response.activity),
            sum(a.reasoning_tokens or 0 for a in response.activity),
            len(response.references),
        )
        ran = {
            a.id: a.search_index_arguments.search
            for a in response.activity
            if a.search_index_arguments and a.search_index_arguments.search
        }
        references = self._trimmed(response)
        ranked = sorted(references, key=lambda r: -(r.reranker_score or 0.0))
        return [self._hit(r, ran.get(r.activity_source or 0, query) or query) for r in ranked[:top]]

    def _trimmed(self, response: RetrievalResponse) -> list[_Reference]:
        """With security trimming on, only the references of this knowledge source, the one `filterAddOn`
        filtered: a knowledge base may hold other sources (the web, blobs, other indexes) that nothing
        trims. They are dropped, with a WARNING naming them."""
        if self.spec.access_filter(None) is None:
            return response.references
        ours = {a.id for a in response.activity if a.knowledge_source_name == self.knowledge_source}
        kept = [r for r in response.references if r.activity_source in ours]
        dropped = [r for r in response.references if r.activity_source not in ours]
        if dropped:
            named: dict[int | None, str] = {
                a.id: a.knowledge_source_name or a.type for a in response.activity
            }
            others = sorted({named.get(r.activity_source, r.type) for r in dropped})
            log.warning(
                "knowledge base %r: %d references from %s dropped: security trimming filters only the "
                "knowledge source %r",
                self.knowledge_base,
                len(dropped),
                ", ".join(repr(o) for o in others),
                self.knowledge_source,
            )
        return kept

    def _hit(self, reference: _Reference, query: str) -> ScoredChunk:
        spec, data = self.spec, reference.source_data or {}
        content = spec.content_fields_separator.join(
            str(data[f]) for f in spec.content_fields if data.get(f) is not None
        )
        url = data.get(spec.url_field or "") or reference.url or reference.blob_url or reference.doc_url
        chunk = Chunk(
            id=str(reference.doc_key or data.get(spec.key_field) or reference.id),
            content=content,
            title=data.get(spec.title_field or "") or reference.title,
            url=url,
            filepath=str(data.get(spec.filepath_field or "") or ""),
            chunk_id=str(data.get(spec.chunk_id_field) or ""),
            content_hash="",
        )
        score = reference.reranker_score or 0.0
        relevance = None if reference.reranker_score is None else score / RERANKER_MAX
        return ScoredChunk(chunk=chunk, score=score, query=query, rerank_score=relevance)

    async def ready(self) -> str | None:
        """None, or the credential / knowledge base problem the last retrieve ran into (reading the knowledge
        base's definition would need an admin key, which a query-only deployment does not have)."""
        return self._problem

    async def aclose(self) -> None:
        await self._client.close()
