"""The Azure AI Search index definition, derived only from :class:`rag.index_spec.IndexSpec`.

The answer backends build On Your Data's `fields_mapping`, vector fields, semantic configuration and
embedding dependency from the same spec, so what the bot asks for is what this creates.
"""

from __future__ import annotations

from azure.search.documents.indexes.models import (
    AzureOpenAIVectorizer,
    AzureOpenAIVectorizerParameters,
    HnswAlgorithmConfiguration,
    HnswParameters,
    SearchField,
    SearchFieldDataType,
    SearchIndex,
    SemanticConfiguration,
    SemanticField,
    SemanticPrioritizedFields,
    SemanticSearch,
    VectorSearch,
    VectorSearchProfile,
    VectorSearchVectorizer,
)

from rag.azure.embeddings import embedding_target
from rag.errors import ConfigError
from rag.index_spec import IndexSpec

ALGORITHM = "ragbot-hnsw"
PROFILE = "ragbot-vector-profile"
VECTORIZER = "ragbot-aoai-vectorizer"
KNOWN_MODELS = ("text-embedding-3-large", "text-embedding-3-small", "text-embedding-ada-002")


def embedding_model_name(spec: IndexSpec) -> str:
    """The model behind the embeddings deployment, which the vectorizer must name.

    There is no setting for it: deployments are usually named after their model, otherwise the
    dimensions decide (3072 is only text-embedding-3-large; 1536 is ada-002, the sample app's default).
    """
    deployment = (spec.embedding_deployment or "").lower()
    for model in KNOWN_MODELS:
        if model in deployment:
            return model
    if spec.dimensions == 3072:
        return "text-embedding-3-large"
    return "text-embedding-ada-002" if spec.dimensions == 1536 else "text-embedding-3-small"


def _field(name: str, type: str = SearchFieldDataType.STRING, **flags: bool) -> SearchField:
    """A field with every flag spelled out: the service's defaults turn most of them on for strings."""
    settings = {"key": False, "searchable": False, "filterable": False, "sortable": False, "facetable": False}
    return SearchField(name=name, type=type, **{**settings, "retrievable": True, **flags})


def filepath_field(spec: IndexSpec) -> str:
    """The field files are keyed by: incremental indexing filters and pages on it, so it must exist."""
    if not spec.filepath_field:
        raise ConfigError("AZURE_SEARCH_FILENAME_COLUMN must name a field: the indexer keys files by it")
    return spec.filepath_field


def build_index(spec: IndexSpec, *, vectorizer_key: str | None = None) -> SearchIndex:
    """The index for `spec`; `vectorizer_key` is the Azure OpenAI key the service uses to embed queries
    (without it the search service calls Azure OpenAI with its managed identity)."""
    fields = [_field(spec.key_field, key=True, filterable=True, sortable=True)]
    fields += [_field(name, searchable=True) for name in spec.content_fields]
    if spec.title_field:
        fields.append(_field(spec.title_field, searchable=True))
    if spec.url_field:
        fields.append(_field(spec.url_field))
    fields += [
        _field(filepath_field(spec), filterable=True, sortable=True, facetable=True),
        _field(spec.chunk_id_field, filterable=True),
        _field(spec.page_field, SearchFieldDataType.INT32, filterable=True),
        _field(
            spec.last_modified_field, SearchFieldDataType.DATE_TIME_OFFSET, filterable=True, sortable=True
        ),
        _field(spec.hash_field, filterable=True),
        _field(spec.root_field, filterable=True),
    ]
    fields += [
        _field(name, "Collection(Edm.String)", filterable=True)
        for name in (spec.groups_field, spec.users_field)
        if name
    ]
    vector_search = None
    if spec.vector_field:
        vector = _field(
            spec.vector_field,
            "Collection(Edm.Single)",
            searchable=True,
            retrievable=False,
        )
        vector.vector_search_dimensions = spec.dimensions
        vector.vector_search_profile_name = PROFILE
        fields.append(vector)
        vectorizers: list[VectorSearchVectorizer] = []
        if spec.embedding_endpoint and spec.embedding_deployment:
            resource, deployment = embedding_target(spec.embedding_endpoint, spec.embedding_deployment)
            vectorizers.append(
                AzureOpenAIVectorizer(
                    vectorizer_name=VECTORIZER,
                    parameters=AzureOpenAIVectorizerParameters(
                        resource_url=resource,
                        deployment_name=deployment,
                        model_name=embedding_model_name(spec),
                        api_key=vectorizer_key,
                    ),
                )
            )
        vector_search = VectorSearch(
            algorithms=[
                HnswAlgorithmConfiguration(name=ALGORITHM, parameters=HnswParameters(metric="cosine"))
            ],
            profiles=[
                VectorSearchProfile(
                    name=PROFILE,
                    algorithm_configuration_name=ALGORITHM,
                    vectorizer_name=VECTORIZER if vectorizers else None,
                )
            ],
            vectorizers=vectorizers,
        )
    semantic = SemanticSearch(
        default_configuration_name=spec.semantic_configuration,
        configurations=[
            SemanticConfiguration(
                name=spec.semantic_configuration,
                prioritized_fields=SemanticPrioritizedFields(
                    title_field=SemanticField(field_name=spec.title_field) if spec.title_field else None,
                    content_fields=[SemanticField(field_name=name) for name in spec.content_fields],
                ),
            )
        ],
    )
    return SearchIndex(name=spec.name, fields=fields, vector_search=vector_search, semantic_search=semantic)
