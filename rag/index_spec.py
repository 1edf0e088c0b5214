"""One description of the search index, shared by the indexer (creates it) and the answer backends
(build `data_sources.fields_mapping`, vector fields, semantic configuration and embedding dependency
from it), so the two cannot drift."""

from __future__ import annotations

import re

from pydantic import BaseModel

from rag.azure.security import access_filter
from rag.contract import Asker
from rag.errors import ConfigError
from rag.settings import AzureOpenAISettings, AzureSearchSettings

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")

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
    users_field: str | None = None
    embedding_deployment: str | None = None
    embedding_endpoint: str | None = None

    @property
    def content_field(self) -> str:
        return self.content_fields[0]

    @property
    def vector_field(self) -> str | None:
        return self.vector_fields[0] if self.vector_fields else None

    def access_filter(self, asker: Asker | None) -> str | None:
        """The OData clause limiting a search to what `asker` may see (None: this index does not trim)."""
        return access_filter(asker, self.groups_field, self.users_field)

    @classmethod
    def from_settings(cls, search: AzureSearchSettings, openai: AzureOpenAISettings) -> IndexSpec:
        """The index the `AZURE_SEARCH_*` column settings describe (vectors when an embedding is set)."""
        for setting, value in (
            ("AZURE_SEARCH_PERMITTED_GROUPS_COLUMN", search.permitted_groups_column),
            ("AZURE_SEARCH_PERMITTED_USERS_COLUMN", search.permitted_users_column),
        ):
            if value and not _FIELD_NAME.match(value):
                raise ConfigError(f"{setting}={value!r} is not a field name")
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
            groups_field=search.permitted_groups_column or None,
            users_field=search.permitted_users_column or None,
            embedding_deployment=openai.embedding_name,
            embedding_endpoint=openai.embedding_endpoint or openai.base_url,
        )
