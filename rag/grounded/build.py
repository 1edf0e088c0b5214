"""Assembles the grounded and local backends from settings (called by :func:`rag.factory.build_answerer`).

Three retrievers: an Azure AI Search knowledge base (`AZURE_SEARCH_KNOWLEDGE_BASE`), the Azure AI Search
index (`AZURE_SEARCH_INDEX`), or the local index. The same knobs drive every backend:
`AZURE_SEARCH_STRICTNESS`, `_TOP_K` (top_n_documents), `_ENABLE_IN_DOMAIN` (in_scope), `_QUERY_TYPE`,
`_FILTER`, `_PERMITTED_GROUPS_COLUMN`, `_PERMITTED_USERS_COLUMN`, `_MAX_SEARCH_QUERIES` (the local index
trims without the column settings: it always knows each document's groups and users).
The local index has no OData and no semantic ranker: with no explicit `AZURE_SEARCH_QUERY_TYPE` it runs the
tuned hybrid (keywords + vectors), and an OData filter is refused rather than silently ignored.
"""

from __future__ import annotations

from rag.contract import Answerer
from rag.errors import ConfigError
from rag.grounded.answerer import GroundedAnswerer, GroundingOptions
from rag.grounded.extractive import ExtractiveGenerator
from rag.grounded.intent import ChatRewriter, FollowUpRewriter
from rag.grounded.protocols import Generator, QueryRewriter, Retriever
from rag.local.embedder import LocalEmbedder
from rag.local.retriever import LocalRetriever
from rag.settings import QueryType, Settings

DEFAULT_MAX_SEARCH_QUERIES = 3


def grounding_options(settings: Settings) -> GroundingOptions:
    search = settings.search
    return GroundingOptions(
        strictness=search.strictness,
        top_n_documents=search.top_k,
        in_scope=search.enable_in_domain,
        max_search_queries=search.max_search_queries or DEFAULT_MAX_SEARCH_QUERIES,
        include_all_retrieved="all_retrieved_documents" in search.include_contexts,
    )


def build_grounded(settings: Settings, *, local_only: bool) -> Answerer:
    """`local_only`: the embedded default (local index, extractive answers); else the grounded backend."""
    options = grounding_options(settings)
    embedder = LocalEmbedder()
    if local_only:
        return GroundedAnswerer(
            local_retriever(settings, embedder), ExtractiveGenerator(embedder), options=options, name="local"
        )
    retriever = (
        azure_retriever(settings) if settings.search.configured else local_retriever(settings, embedder)
    )
    generator, rewriter = chat_or_extractive(settings, embedder)
    return GroundedAnswerer(retriever, generator, rewriter=rewriter, options=options, name="grounded")


def local_retriever(settings: Settings, embedder: LocalEmbedder) -> LocalRetriever:
    search = settings.search
    if search.filter:
        raise ConfigError(
            "AZURE_SEARCH_FILTER is an OData filter for Azure AI Search; the local index cannot apply it "
            "(unset it, or configure AZURE_SEARCH_SERVICE and AZURE_SEARCH_INDEX)"
        )
    explicit = "query_type" in search.model_fields_set
    query_type = search.query_type if explicit else QueryType.vector_simple_hybrid
    return LocalRetriever(settings.ragbot.local_index_path, embedder, query_type=query_type)


def azure_retriever(settings: Settings) -> Retriever:
    """The knowledge base when `AZURE_SEARCH_KNOWLEDGE_BASE` is set, else the index itself."""
    from azure.core.credentials import AzureKeyCredential

    from rag.azure.auth import default_credential
    from rag.azure.client import sdk_options
    from rag.grounded.azure_search import AzureSearchRetriever
    from rag.index_spec import IndexSpec

    search = settings.search
    spec = IndexSpec.from_settings(search, settings.openai)
    key = search.key.get_secret_value() if search.key else None
    credential = AzureKeyCredential(key) if key else default_credential()
    assert search.base_url is not None  # `configured` checked by the caller
    if search.knowledge_base:
        from rag.grounded.knowledge_base import KnowledgeBaseRetriever

        assert search.knowledge_source_name is not None  # checked by Settings
        return KnowledgeBaseRetriever(
            endpoint=search.base_url,
            knowledge_base=search.knowledge_base,
            knowledge_source=search.knowledge_source_name,
            spec=spec,
            credential=credential,
            strictness=search.strictness,
            reranker_threshold=search.reranker_threshold,
            search_filter=search.filter,
            max_runtime=settings.ragbot.request_timeout,
            max_output_tokens=search.max_output_tokens,
            **sdk_options(settings.ragbot),
        )
    integrated = search.use_integrated_vectorization
    embedder = None
    if search.query_type.uses_vectors and not integrated:
        from rag.azure.embeddings import AzureEmbedder

        embedder = AzureEmbedder.from_settings(settings)
    return AzureSearchRetriever(
        endpoint=search.base_url,
        spec=spec,
        credential=credential,
        query_type=search.query_type,
        embedder=embedder,
        integrated_vectorization=integrated,
        search_filter=search.filter,
        **sdk_options(settings.ragbot),
    )


def chat_or_extractive(settings: Settings, embedder: LocalEmbedder) -> tuple[Generator, QueryRewriter]:
    """`RAGBOT_GENERATOR`; auto: Azure chat if configured, else OpenAI-compatible, else extractive."""
    choice = settings.ragbot.generator
    if choice == "auto":
        if settings.openai.configured:
            choice = "azure"
        elif settings.ragbot.llm_base_url:
            choice = "openai"
        else:
            choice = "extractive"
    if choice == "extractive":
        return ExtractiveGenerator(embedder), FollowUpRewriter()
    from rag.azure.chat_request import ChatParams
    from rag.azure.client import AzureOpenAIClient
    from rag.grounded.chat import ChatGenerator

    openai = settings.openai
    if choice == "azure":
        if not openai.configured:
            raise ConfigError(
                "RAGBOT_GENERATOR=azure needs AZURE_OPENAI_ENDPOINT (or _RESOURCE) and AZURE_OPENAI_MODEL"
            )
        client = AzureOpenAIClient.from_settings(settings)
    else:
        if not settings.ragbot.llm_base_url or not settings.ragbot.llm_model:
            raise ConfigError("RAGBOT_GENERATOR=openai needs RAGBOT_LLM_BASE_URL and RAGBOT_LLM_MODEL")
        client = AzureOpenAIClient.openai_compatible(settings)
    generator = ChatGenerator(
        client,
        name=choice,
        params=ChatParams.from_settings(openai),
        role_information=openai.system_message,
        in_scope=settings.search.enable_in_domain,
        history_tokens=settings.ragbot.history_tokens,
        streaming=openai.stream,
    )
    return generator, ChatRewriter(
        generator, max_queries=settings.search.max_search_queries or DEFAULT_MAX_SEARCH_QUERIES
    )
