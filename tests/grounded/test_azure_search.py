"""AzureSearchRetriever against a loopback fake of the Search REST API: what azure-search-documents sends
for each query type, filter and security trimming, and how the hits become chunks with a relevance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from azure.core.credentials import AzureKeyCredential

from rag.contract import Asker
from rag.errors import AuthError, DataSourceError, UpstreamUnavailable
from rag.grounded.azure_search import AzureSearchRetriever
from rag.index_spec import IndexSpec
from rag.settings import QueryType

SPEC = IndexSpec(
    name="kb", vector_fields=["contentVector"], semantic_configuration="my-semantic", groups_field="groups"
)
HITS = [
    {
        "@search.score": 0.8,
        "@search.rerankerScore": 3.2,
        "id": "a",
        "content": "VPN on a Mac.",
        "title": "VPN Mac",
        "url": "https://kb/vpn-mac",
        "filepath": "it/vpn-macos.md",
    },
    {
        "@search.score": 0.6,
        "@search.rerankerScore": 1.0,
        "id": "b",
        "content": "Printers.",
        "title": "Print",
        "url": None,
        "filepath": "it/print.md",
    },
]


class FixedEmbedder:
    name, dimensions = "fixed", 3

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += texts
        return np.tile(np.array([0.5, 0.25, 0.125], dtype=np.float32), (len(texts), 1))


def retriever(cloud, query_type: QueryType, **kwargs) -> AzureSearchRetriever:  # type: ignore[no-untyped-def]
    return AzureSearchRetriever(
        endpoint=cloud.url,
        spec=SPEC,
        credential=AzureKeyCredential("search-key"),
        query_type=query_type,
        **kwargs,
    )


async def test_simple_query_with_filter_and_trimming(cloud) -> None:  # type: ignore[no-untyped-def]
    cloud.search_hits = HITS
    search = retriever(cloud, QueryType.simple, search_filter="lang eq 'en'")
    hits = await search.retrieve("vpn mac", top=7, asker=Asker(groups=["g1", "o'brien"]))
    (request,) = cloud.requests("/docs/search.post.search")
    assert (
        request.path == "/indexes('kb')/docs/search.post.search"
        and request.headers["api-key"] == "search-key"
    )
    body = request.body
    assert body["search"] == "vpn mac" and body["top"] == 7
    assert "queryType" not in body and "vectorQueries" not in body
    assert body["select"] == "id,content,title,url,filepath"
    assert body["filter"] == (
        "(lang eq 'en') and (not groups/any() or groups/any(g: search.in(g, 'g1,o''brien', ',')))"
    )
    assert [h.chunk.id for h in hits] == ["a", "b"]
    assert hits[0].chunk.filepath == "it/vpn-macos.md" and hits[0].chunk.title == "VPN Mac"
    assert hits[0].score == 0.8 and hits[0].rerank_score is None  # bm25 has no absolute scale
    await search.aclose()


async def test_an_anonymous_asker_sees_only_public_documents(cloud) -> None:  # type: ignore[no-untyped-def]
    search = retriever(cloud, QueryType.simple)
    await search.retrieve("q", top=3)
    await search.retrieve("q", top=3, asker=Asker(user_id="web-1", groups=[]))
    bare = AzureSearchRetriever(
        endpoint=cloud.url, spec=IndexSpec(name="kb"), credential=AzureKeyCredential("search-key")
    )
    await bare.retrieve("q", top=3, asker=Asker(groups=["g1"]))
    first, second, third = cloud.requests("/docs/search.post.search")
    assert first.body["filter"] == second.body["filter"] == "not groups/any()"
    assert "filter" not in third.body  # an index without access fields: nothing to trim on
    await search.aclose()
    await bare.aclose()


async def test_semantic_uses_the_configuration_and_the_reranker_score(cloud) -> None:  # type: ignore[no-untyped-def]
    cloud.search_hits = HITS
    search = retriever(cloud, QueryType.semantic)
    hits = await search.retrieve("vpn mac", top=5)
    body = cloud.requests("/docs/search.post.search")[0].body
    assert body["queryType"] == "semantic" and body["semanticConfiguration"] == "my-semantic"
    assert [h.rerank_score for h in hits] == [0.8, 0.25]  # reranker score / 4
    await search.aclose()


async def test_vector_query_embeds_the_question(cloud) -> None:  # type: ignore[no-untyped-def]
    cloud.search_hits = HITS
    embedder = FixedEmbedder()
    search = retriever(cloud, QueryType.vector, embedder=embedder)
    hits = await search.retrieve("vpn mac", top=4)
    body = cloud.requests("/docs/search.post.search")[0].body
    assert "search" not in body and embedder.texts == ["vpn mac"]
    assert body["vectorQueries"] == [
        {"kind": "vector", "vector": [0.5, 0.25, 0.125], "k": 4, "fields": "contentVector"}
    ]
    assert hits[0].rerank_score == pytest.approx(2 - 1 / 0.8)  # cosine from the similarity score
    await search.aclose()


@pytest.mark.parametrize(
    ("query_type", "semantic"),
    [(QueryType.vector_simple_hybrid, False), (QueryType.vector_semantic_hybrid, True)],
)
async def test_hybrids_send_text_and_vector(cloud, query_type: QueryType, semantic: bool) -> None:  # type: ignore[no-untyped-def]
    search = retriever(cloud, query_type, integrated_vectorization=True)
    await search.retrieve("vpn mac", top=3)
    body = cloud.requests("/docs/search.post.search")[0].body
    assert body["search"] == "vpn mac"
    assert body["vectorQueries"] == [{"kind": "text", "text": "vpn mac", "k": 3, "fields": "contentVector"}]
    assert (body.get("queryType") == "semantic") is semantic
    await search.aclose()


async def test_vector_needs_a_vector_field_and_a_vectorizer(cloud) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataSourceError, match="AZURE_SEARCH_VECTOR_COLUMNS"):
        AzureSearchRetriever(
            endpoint=cloud.url,
            spec=IndexSpec(name="kb"),
            credential=AzureKeyCredential("k"),
            query_type=QueryType.vector,
        )
    with pytest.raises(DataSourceError, match="AZURE_OPENAI_EMBEDDING_NAME"):
        retriever(cloud, QueryType.vector)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthError),
        (403, AuthError),
        (404, DataSourceError),
        (400, DataSourceError),
        (503, UpstreamUnavailable),
    ],
)
async def test_service_errors_become_typed_errors(cloud, status: int, error: type[Exception]) -> None:  # type: ignore[no-untyped-def]
    cloud.search_status = status
    search = retriever(cloud, QueryType.simple, retry_total=0)
    try:
        with pytest.raises(error):
            await search.retrieve("q", top=3)
    finally:
        await search.aclose()


async def test_ready_counts_documents(cloud) -> None:  # type: ignore[no-untyped-def]
    cloud.search_hits = HITS
    search = retriever(cloud, QueryType.simple)
    assert await search.ready() is None
    assert cloud.requests("/docs/$count")
    await search.aclose()


async def test_an_unreachable_service_is_upstream_unavailable(unused_tcp_port: int) -> None:
    search = AzureSearchRetriever(
        endpoint=f"http://127.0.0.1:{unused_tcp_port}",
        spec=SPEC,
        credential=AzureKeyCredential("search-key"),
        retry_total=0,
    )
    try:
        with pytest.raises(UpstreamUnavailable, match="unreachable"):
            await search.retrieve("q", top=3)
    finally:
        await search.aclose()
