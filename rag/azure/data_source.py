"""The `azure_search` data source: one dialect-neutral model built from settings, and pure functions that
write it in each api-version's wire format.

Retrieval knobs whose ragbot default equals the service's documented default (in_scope, top_n_documents,
strictness, query_type) are sent only when the operator set them, so a request shows exactly what was
chosen and an unset knob keeps the service's behaviour. The field mapping comes from
:class:`~rag.index_spec.IndexSpec`, the same description the indexer builds the index from; a column set
to an empty value is left out of the mapping.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from rag.azure.dialects import Dialect, versions_with
from rag.azure.embeddings import embedding_target
from rag.errors import ConfigError
from rag.index_spec import IndexSpec
from rag.settings import QueryType, Settings

AuthKind = Literal[
    "api_key", "system_assigned_managed_identity", "user_assigned_managed_identity", "access_token"
]
EmbeddingKind = Literal["deployment_name", "endpoint", "integrated"]


_LEGACY_AUTH = {
    "api_key": "APIKey",
    "system_assigned_managed_identity": "SystemAssignedManagedIdentity",
    "user_assigned_managed_identity": "UserAssignedManagedIdentity",
}
_LEGACY_EMBEDDING = {"deployment_name": "DeploymentName", "endpoint": "Endpoint"}
_LEGACY_QUERY_TYPE = {
    QueryType.vector_simple_hybrid: "vectorSimpleHybrid",
    QueryType.vector_semantic_hybrid: "vectorSemanticHybrid",
}


class SearchAuth(BaseModel):
    kind: AuthKind
    secret: SecretStr | None = None  # api key or access token
    resource_id: str | None = None  # user-assigned managed identity


class EmbeddingDependency(BaseModel):
    kind: EmbeddingKind
    deployment_name: str | None = None
    endpoint: str | None = None  # full `.../openai/deployments/{name}/embeddings` URL, no api-version
    key: SecretStr | None = None
    dimensions: int | None = None


class AzureSearchSource(BaseModel):
    """Everything On Your Data needs to know about the index, independent of the wire dialect."""

    endpoint: str
    index_name: str
    auth: SearchAuth
    content_fields: list[str] = []
    content_fields_separator: str | None = None
    title_field: str | None = None
    url_field: str | None = None
    filepath_field: str | None = None
    vector_fields: list[str] = []
    in_scope: bool | None = None
    top_n_documents: int | None = None
    strictness: int | None = None
    query_type: QueryType | None = None
    semantic_configuration: str | None = None
    filter: str | None = None
    permitted_groups_field: str | None = None
    permitted_users_field: str | None = None
    embedding: EmbeddingDependency | None = None
    role_information: str | None = None
    max_search_queries: int | None = None
    allow_partial_result: bool | None = None
    include_contexts: list[str] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureSearchSource:
        search, openai = settings.search, settings.openai
        if not search.base_url or not search.index:
            raise ConfigError("On Your Data needs AZURE_SEARCH_SERVICE (or _ENDPOINT) and AZURE_SEARCH_INDEX")
        spec = IndexSpec.from_settings(search, openai)
        chosen = search.model_fields_set
        query_type = search.query_type if "query_type" in chosen else None
        content = spec.content_fields if search.content_columns else []
        return cls(
            endpoint=search.endpoint or str(search.base_url),
            index_name=search.index,
            auth=_auth(settings),
            content_fields=content,
            content_fields_separator=spec.content_fields_separator if content else None,
            title_field=spec.title_field or None,
            url_field=spec.url_field or None,
            filepath_field=spec.filepath_field or None,
            vector_fields=spec.vector_fields,
            in_scope=search.enable_in_domain if "enable_in_domain" in chosen else None,
            top_n_documents=search.top_k if "top_k" in chosen else None,
            strictness=search.strictness if "strictness" in chosen else None,
            query_type=query_type,
            semantic_configuration=spec.semantic_configuration
            if query_type and query_type.uses_semantic
            else None,
            filter=search.filter or None,
            permitted_groups_field=spec.groups_field,
            permitted_users_field=spec.users_field,
            embedding=_embedding(settings, spec) if query_type and query_type.uses_vectors else None,
            role_information=openai.system_message or None,
            max_search_queries=search.max_search_queries,
            allow_partial_result=search.allow_partial_result,
            include_contexts=search.include_contexts,
        )

    def check(self, dialect: Dialect) -> None:
        """Fail at start-up, naming the setting and the api-version, for anything `dialect` cannot express."""
        version = dialect.version
        wanted: list[tuple[bool, str, str]] = [
            (
                self.auth.kind.endswith("managed_identity") and not dialect.managed_identity,
                "managed identity authentication to Azure AI Search (AZURE_SEARCH_KEY is unset)",
                "managed_identity",
            ),
            (self.auth.kind == "access_token", "AZURE_SEARCH_ACCESS_TOKEN", "access_token"),
            (
                self.embedding is not None and self.embedding.kind == "integrated",
                "AZURE_SEARCH_USE_INTEGRATED_VECTORIZATION",
                "integrated_vectorization",
            ),
            (
                self.embedding is not None and self.embedding.dimensions is not None,
                "AZURE_OPENAI_EMBEDDING_DIMENSIONS (embedding_dependency.dimensions)",
                "embedding_dimensions",
            ),
            (self.max_search_queries is not None, "AZURE_SEARCH_MAX_SEARCH_QUERIES", "max_search_queries"),
            (
                self.allow_partial_result is not None,
                "AZURE_SEARCH_ALLOW_PARTIAL_RESULT",
                "allow_partial_result",
            ),
            (bool(self.include_contexts), "AZURE_SEARCH_INCLUDE_CONTEXTS", "include_contexts"),
        ]
        for configured, what, feature in wanted:
            if configured and not getattr(dialect, feature):
                raise ConfigError(
                    f"{what} is not supported by AZURE_OPENAI_PREVIEW_API_VERSION={version}; "
                    f"it needs one of: {versions_with(feature)}"
                )
        if self.query_type and self.query_type.uses_vectors and self.embedding is None:
            raise ConfigError(
                f"AZURE_SEARCH_QUERY_TYPE={self.query_type.value} needs an embedding: set "
                "AZURE_OPENAI_EMBEDDING_NAME (or _ENDPOINT and _KEY, "
                "or AZURE_SEARCH_USE_INTEGRATED_VECTORIZATION)"
            )


def _auth(settings: Settings) -> SearchAuth:
    search = settings.search
    given = [
        name
        for name, value in (
            ("AZURE_SEARCH_KEY", search.key),
            ("AZURE_SEARCH_ACCESS_TOKEN", search.access_token),
            ("AZURE_SEARCH_MANAGED_IDENTITY_RESOURCE_ID", search.managed_identity_resource_id),
        )
        if value
    ]
    if len(given) > 1:
        raise ConfigError(f"set only one way to authenticate to Azure AI Search, not {' and '.join(given)}")
    if search.key:
        return SearchAuth(kind="api_key", secret=search.key)
    if search.access_token:
        return SearchAuth(kind="access_token", secret=search.access_token)
    if search.managed_identity_resource_id:
        return SearchAuth(
            kind="user_assigned_managed_identity", resource_id=search.managed_identity_resource_id
        )
    return SearchAuth(kind="system_assigned_managed_identity")


def _embedding(settings: Settings, spec: IndexSpec) -> EmbeddingDependency | None:
    openai = settings.openai
    dimensions = spec.dimensions if openai.embedding_dimensions else None
    if settings.search.use_integrated_vectorization:
        return EmbeddingDependency(kind="integrated")
    if openai.embedding_endpoint and openai.embedding_key:
        return EmbeddingDependency(
            kind="endpoint",
            endpoint=embeddings_url(openai.embedding_endpoint, spec.embedding_deployment),
            key=openai.embedding_key,
            dimensions=dimensions,
        )
    if spec.embedding_deployment:
        return EmbeddingDependency(
            kind="deployment_name", deployment_name=spec.embedding_deployment, dimensions=dimensions
        )
    return None


def embeddings_url(endpoint: str, deployment: str | None) -> str:
    """The full embeddings URL On Your Data wants (no api-version), from a resource or a deployment URL."""
    base, name = embedding_target(endpoint, deployment)
    return f"{base}/openai/deployments/{name}/embeddings"


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != [] and v != {}}


def modern_data_source(
    source: AzureSearchSource, dialect: Dialect, search_filter: str | None
) -> dict[str, Any]:
    """`{"type": "azure_search", "parameters": {...}}` for 2024-02-15-preview and later."""
    auth: dict[str, Any] = {"type": source.auth.kind}
    if source.auth.kind == "api_key" and source.auth.secret:
        auth["key"] = source.auth.secret.get_secret_value()
    elif source.auth.kind == "access_token" and source.auth.secret:
        auth["access_token"] = source.auth.secret.get_secret_value()
    elif source.auth.kind == "user_assigned_managed_identity":
        auth["managed_identity_resource_id"] = source.auth.resource_id
    embedding: dict[str, Any] | None = None
    if source.embedding:
        dep = source.embedding
        embedding = _drop_empty(
            {
                "type": dep.kind,
                "deployment_name": dep.deployment_name,
                "endpoint": dep.endpoint,
                "authentication": {"type": "api_key", "key": dep.key.get_secret_value()} if dep.key else None,
                "dimensions": dep.dimensions,
            }
        )
    fields = _drop_empty(
        {
            "content_fields": source.content_fields,
            "content_fields_separator": source.content_fields_separator,
            "title_field": source.title_field,
            "url_field": source.url_field,
            "filepath_field": source.filepath_field,
            "vector_fields": source.vector_fields,
        }
    )
    parameters = _drop_empty(
        {
            "endpoint": source.endpoint,
            "index_name": source.index_name,
            "authentication": auth,
            "fields_mapping": fields,
            "in_scope": source.in_scope,
            "top_n_documents": source.top_n_documents,
            "strictness": source.strictness,
            "query_type": source.query_type.value if source.query_type else None,
            "semantic_configuration": source.semantic_configuration,
            "filter": search_filter,
            "embedding_dependency": embedding,
            "role_information": source.role_information if dialect.role_information else None,
            "max_search_queries": source.max_search_queries,
            "allow_partial_result": source.allow_partial_result,
            "include_contexts": source.include_contexts,
        }
    )
    return {"type": "azure_search", "parameters": parameters}


def legacy_data_source(
    source: AzureSearchSource, dialect: Dialect, search_filter: str | None
) -> dict[str, Any]:
    """`{"type": "AzureCognitiveSearch", "parameters": {...}}` in camelCase for the extensions endpoint.

    2023-06/08 take a flat `key` and `embeddingDeploymentName` / `embeddingEndpoint` + `embeddingKey`;
    2023-12 takes typed `authentication` and `embeddingDependency` objects.
    """
    params: dict[str, Any] = {"endpoint": source.endpoint, "indexName": source.index_name}
    secret = source.auth.secret.get_secret_value() if source.auth.secret else None
    dep = source.embedding
    if dialect.typed_auth:
        auth: dict[str, Any] = {"type": _LEGACY_AUTH[source.auth.kind]}
        if secret:
            auth["key"] = secret
        if source.auth.resource_id:
            auth["managedIdentityResourceId"] = source.auth.resource_id
        params["authentication"] = auth
        if dep:
            params["embeddingDependency"] = _drop_empty(
                {
                    "type": _LEGACY_EMBEDDING[dep.kind],
                    "deploymentName": dep.deployment_name,
                    "endpoint": dep.endpoint,
                    "authentication": {"type": "APIKey", "key": dep.key.get_secret_value()}
                    if dep.key
                    else None,
                }
            )
    else:
        params["key"] = secret
        if dep:
            params["embeddingDeploymentName"] = dep.deployment_name
            params["embeddingEndpoint"] = dep.endpoint
            params["embeddingKey"] = dep.key.get_secret_value() if dep.key else None
    fields = _drop_empty(
        {
            "contentFields": source.content_fields,
            "contentFieldsSeparator": source.content_fields_separator,
            "titleField": source.title_field,
            "urlField": source.url_field,
            "filepathField": source.filepath_field,
            "vectorFields": source.vector_fields,
        }
    )
    query_type = None
    if source.query_type:
        query_type = _LEGACY_QUERY_TYPE.get(source.query_type, source.query_type.value)
    params.update(
        {
            "fieldsMapping": fields,
            "inScope": source.in_scope,
            "topNDocuments": source.top_n_documents,
            "strictness": source.strictness,
            "queryType": query_type,
            "semanticConfiguration": source.semantic_configuration,
            "filter": search_filter,
            "roleInformation": source.role_information,
        }
    )
    return {"type": "AzureCognitiveSearch", "parameters": _drop_empty(params)}


def data_source(source: AzureSearchSource, dialect: Dialect, search_filter: str | None) -> dict[str, Any]:
    """The data source entry in `dialect`'s wire format."""
    build = legacy_data_source if dialect.legacy else modern_data_source
    return build(source, dialect, search_filter)
