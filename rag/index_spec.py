"""One description of the search index, shared by the indexer (creates it) and the answer backends
(build `data_sources.fields_mapping`, vector fields, semantic configuration and embedding dependency
from it), so the two cannot drift."""

from __future__ import annotations

from pydantic import BaseModel

from rag.settings import AzureOpenAISettings, AzureSearchSettings

DEFAULT_DIMENSIONS = 1536  # text-embedding-ada-002 / text-embedding-3-small


class IndexSpec(BaseModel):
    name: str
    key_field: str = "id"
    content_fields: list[str] = ["content"]
    content_fields_separator: str = "\n"
    title_field: str | None = "title"
    url_field: str | None = "url"
    filepath_field: str | None = "filepath"
    chunk_id_field: str = "chunk_id"
    page_field: str = "page"
    last_modified_field: str = "last_modified"
    hash_field: str = "content_hash"
    root_field: str = "source_root"  # absolute folder the filepath is relative to (written by the indexer)
    vector_fields: list[str] = []
    dimensions: int = DEFAULT_DIMENSIONS
    semantic_configuration: str = "default"
    groups_field: str | None = None
    embedding_deployment: str | None = None
    embedding_endpoint: str | None = None

    @property
    def content_field(self) -> str:
        return self.content_fields[0]

    @property
    def vector_field(self) -> str | None:
        return self.vector_fields[0] if self.vector_fields else None

    @classmethod
    def from_settings(cls, search: AzureSearchSettings, openai: AzureOpenAISettings) -> IndexSpec:
        """The index the `AZURE_SEARCH_*` column settings describe (vectors when an embedding is set)."""
        vector_fields = list(search.vector_columns)
        if not vector_fields and openai.embedding_name:
            vector_fields = ["contentVector"]
        return cls(
            name=search.index or "ragbot",
            content_fields=search.content_columns or ["content"],
            content_fields_separator=search.content_columns_separator,
            title_field=search.title_column,
            url_field=search.url_column,
            filepath_field=search.filename_column,
            vector_fields=vector_fields,
            dimensions=openai.embedding_dimensions or DEFAULT_DIMENSIONS,
            semantic_configuration=search.semantic_search_config,
            groups_field=search.permitted_groups_column,
            embedding_deployment=openai.embedding_name,
            embedding_endpoint=openai.embedding_endpoint or openai.base_url,
        )
