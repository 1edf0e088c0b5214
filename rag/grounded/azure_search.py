"""AzureSearchRetriever: the grounded pipeline's retriever over the Azure AI Search index `indexing` builds.

The five On Your Data query types map onto azure-search-documents (async) as the service maps them:
`simple` full-text, `semantic` full-text + the semantic ranker (`semantic_configuration`), `vector` a
vector query (the query embedded by Azure OpenAI, or by the index's own vectorizer with integrated
vectorization), and the two hybrids both at once. The filter is `AZURE_SEARCH_FILTER` and-ed with the
security-trimming clause On Your Data sends for the same asker (`rag.azure.security`). Fields come from
the same settings (:class:`~rag.index_spec.IndexSpec`) On Your Data's `fields_mapping` uses.

Relevance (`rerank_score`, what strictness cuts on), by query type: the semantic reranker score / 4 for
`semantic` and `vector_semantic_hybrid` (its scale is 0-4); the cosine similarity recovered from
`@search.score` = 1 / (2 - cosine) for `vector`; none for `simple` and `vector_simple_hybrid` (BM25 and
RRF scores have no absolute scale), where strictness falls back to a cut relative to the best score.
"""

from __future__ import annotations

import hashlib
from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.search.documents.aio import SearchClient
from azure.search.documents.models import VectorizableTextQuery, VectorizedQuery, VectorQuery

from rag.azure.failures import search_error
from rag.azure.security import combine_filters
from rag.contract import Asker
from rag.documents import Chunk, ScoredChunk
from rag.embedding import Embedder
from rag.errors import DataSourceError
from rag.index_spec import IndexSpec
from rag.settings import QueryType

RERANKER_MAX = 4.0


class AzureSearchRetriever:
    """Searches one Azure AI Search index with the configured query type."""

    name = "azure_search"

    def __init__(
        self,
        *,
        endpoint: str,
        spec: IndexSpec,
        credential: AzureKeyCredential | AsyncTokenCredential,
        query_type: QueryType = QueryType.simple,
        embedder: Embedder | None = None,
        integrated_vectorization: bool = False,
        search_filter: str | None = None,
        **client_options: Any,
    ) -> None:
        if query_type.uses_vectors and not spec.vector_field:
            raise DataSourceError(
                f"AZURE_SEARCH_QUERY_TYPE={query_type.value} needs a vector field: "
                "set AZURE_SEARCH_VECTOR_COLUMNS"
            )
        if query_type.uses_vectors and embedder is None and not integrated_vectorization:
            raise DataSourceError(
                f"AZURE_SEARCH_QUERY_TYPE={query_type.value} needs an embedding deployment "
                "(AZURE_OPENAI_EMBEDDING_NAME) or the index's vectorizer "
                "(AZURE_SEARCH_USE_INTEGRATED_VECTORIZATION)"
            )
        self.spec = spec
        self.query_type = query_type
        self.embedder = embedder
        self.integrated_vectorization = integrated_vectorization
        self.search_filter = search_filter
        self._client = SearchClient(endpoint, spec.name, credential, **client_options)

    async def retrieve(self, query: str, *, top: int, asker: Asker | None = None) -> list[ScoredChunk]:
        kwargs: dict[str, Any] = {
            "top": top,
            "filter": combine_filters(self.search_filter, self.spec.access_filter(asker)),
            "select": self._fields(),
        }
        if self.query_type.uses_semantic:
            kwargs["query_type"] = "semantic"
            kwargs["semantic_configuration_name"] = self.spec.semantic_configuration
        if self.query_type.uses_vectors:
            kwargs["vector_queries"] = [await self._vector_query(query, top)]
        search_text = None if self.query_type is QueryType.vector else query
        try:
            results = await self._client.search(search_text=search_text, **kwargs)
            return [self._hit(document, query) async for document in results]
        except AzureError as exc:
            raise search_error(exc, f"Azure AI Search index {self.spec.name!r}") from exc

    async def _vector_query(self, query: str, top: int) -> VectorQuery:
        fields = ",".join(self.spec.vector_fields)
        if self.integrated_vectorization:
            return VectorizableTextQuery(text=query, k_nearest_neighbors=top, fields=fields)
        assert self.embedder is not None  # checked in __init__
        vector = (await self.embedder.embed([query]))[0]
        return VectorizedQuery(vector=[float(x) for x in vector], k_nearest_neighbors=top, fields=fields)

    def _fields(self) -> list[str]:
        spec = self.spec
        wanted = [spec.key_field, *spec.content_fields, spec.title_field, spec.url_field, spec.filepath_field]
        return list(dict.fromkeys(f for f in wanted if f))

    def _hit(self, document: dict[str, Any], query: str) -> ScoredChunk:
        spec = self.spec
        content = spec.content_fields_separator.join(
            str(document[f]) for f in spec.content_fields if document.get(f) is not None
        )
        filepath = str(document.get(spec.filepath_field or "") or "")
        key = str(
            document.get(spec.key_field) or hashlib.sha256(f"{filepath}\n{content}".encode()).hexdigest()
        )
        chunk = Chunk(
            id=key,
            content=content,
            title=document.get(spec.title_field or ""),
            url=document.get(spec.url_field or ""),
            filepath=filepath,
            chunk_id=str(document.get(spec.chunk_id_field) or ""),
            content_hash="",
        )
        score = float(document.get("@search.score") or 0.0)
        return ScoredChunk(
            chunk=chunk, score=score, query=query, rerank_score=self._relevance(document, score)
        )

    def _relevance(self, document: dict[str, Any], score: float) -> float | None:
        if self.query_type.uses_semantic:
            reranker = document.get("@search.reranker_score")
            return None if reranker is None else float(reranker) / RERANKER_MAX
        if self.query_type is QueryType.vector and score > 0:
            return max(0.0, 2.0 - 1.0 / score)
        return None

    async def ready(self) -> str | None:
        try:
            await self._client.get_document_count()
        except ClientAuthenticationError as exc:
            return f"Azure AI Search refused the credentials: {exc.message}"
        except HttpResponseError as exc:
            return f"Azure AI Search index {self.spec.name!r} is not usable: {exc.message}"
        except Exception as exc:  # connection errors and the like: report, do not crash the probe
            return f"Azure AI Search is unreachable: {exc}"
        return None

    async def aclose(self) -> None:
        await self._client.close()
