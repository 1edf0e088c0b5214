"""What each supported api-version can express, so request building and validation ask one table.

Two wire dialects exist: the legacy extensions endpoint (`dataSources`, camelCase, `AzureCognitiveSearch`,
citations in a tool message) and the modern chat endpoint (`data_sources`, snake_case, `azure_search`,
`message.context`). Within each, versions differ in which parameters they accept.
"""

from __future__ import annotations

from pydantic import BaseModel

from rag.errors import ConfigError
from rag.settings import SUPPORTED_API_VERSIONS


class Dialect(BaseModel, frozen=True):
    version: str
    legacy: bool
    typed_auth: bool = True  # authentication/embeddingDependency as typed objects (not flat keys)
    managed_identity: bool = True
    access_token: bool = False
    integrated_vectorization: bool = False
    embedding_dimensions: bool = False  # `dimensions` inside embedding_dependency
    role_information: bool = True
    max_search_queries: bool = False
    allow_partial_result: bool = False
    include_contexts: bool = False
    rerank_score: bool = False
    embeddings_input_type: bool = True
    embeddings_dimensions: bool = False  # `dimensions` on the /embeddings endpoint
    stream_usage: bool = False  # `stream_options.include_usage`: a last chunk with usage, empty `choices`
    choices_and_seed: bool = True  # `n` and `seed` (the extensions endpoint's schema declares neither)
    image_generations: bool = True  # synchronous `images/generations` (before: queued DALL-E 2 jobs)
    images_per_request: int = 1  # the schema's maximum `n` (DALL-E 3 makes one; gpt-image-1 up to 10)

    @property
    def chat_path(self) -> str:
        """The deployment-relative path On Your Data requests go to."""
        return "extensions/chat/completions" if self.legacy else "chat/completions"


_DIALECTS = {
    d.version: d
    for d in (
        Dialect(
            version="2023-06-01-preview",
            legacy=True,
            typed_auth=False,
            managed_identity=False,
            embeddings_input_type=False,
            choices_and_seed=False,
            image_generations=False,
        ),
        Dialect(
            version="2023-08-01-preview",
            legacy=True,
            typed_auth=False,
            managed_identity=False,
            embeddings_input_type=False,
            choices_and_seed=False,
            image_generations=False,
        ),
        Dialect(version="2023-12-01-preview", legacy=True, choices_and_seed=False),
        Dialect(version="2024-02-15-preview", legacy=False),
        Dialect(version="2024-10-21", legacy=False, embeddings_dimensions=True, stream_usage=True),
        Dialect(
            version="2025-04-01-preview",
            legacy=False,
            access_token=True,
            integrated_vectorization=True,
            embedding_dimensions=True,
            role_information=False,
            max_search_queries=True,
            allow_partial_result=True,
            include_contexts=True,
            rerank_score=True,
            embeddings_dimensions=True,
            stream_usage=True,
            images_per_request=10,
        ),
    )
}
assert tuple(_DIALECTS) == SUPPORTED_API_VERSIONS


def dialect(version: str) -> Dialect:
    """The dialect of `version`; an unknown version is a start-up error listing the known ones."""
    try:
        return _DIALECTS[version]
    except KeyError:
        raise ConfigError(
            f"AZURE_OPENAI_PREVIEW_API_VERSION={version!r} is not supported; use one of "
            + ", ".join(SUPPORTED_API_VERSIONS)
        ) from None


def versions_with(feature: str) -> str:
    """The api-versions that support `feature`, for error messages."""
    versions = [v for v, d in _DIALECTS.items() if getattr(d, feature)]
    return ", ".join(versions) if versions else "none"
