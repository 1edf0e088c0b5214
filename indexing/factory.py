"""Target, embedding model and chunk size for `ragbot index --target azure|local`, from settings.

Chunk sizes: Azure uses about 1024 tokens with 128 overlap (the defaults of Microsoft's sample app's data
preparation); the local index sizes chunks to the embedding model's 256-token window, keeping room for
the title and heading line that are embedded with each passage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from indexing.targets import Target
from rag.embedding import Embedder
from rag.errors import ConfigError
from rag.index_spec import IndexSpec
from rag.settings import Settings

TargetName = Literal["azure", "local"]

AZURE_CHUNK_TOKENS, AZURE_OVERLAP = 1024, 128
EMBEDDING_CONTEXT_RESERVE = 48  # tokens kept free for the title and headings line (plus [CLS]/[SEP])
LOCAL_OVERLAP = 32


@dataclass
class Setup:
    target: Target
    embedder: Embedder | None
    chunk_tokens: int
    overlap: int
    embed_concurrency: int = 1


def default_target(settings: Settings) -> TargetName:
    return "azure" if settings.search.configured else "local"


def local_setup(settings: Settings) -> Setup:
    from indexing.targets import LocalTarget
    from rag.local.embedder import DIMENSIONS, MAX_TOKENS, MODEL_NAME, LocalEmbedder

    target = LocalTarget(settings.ragbot.local_index_path, dimensions=DIMENSIONS, embedder_name=MODEL_NAME)
    return Setup(target, LocalEmbedder(), MAX_TOKENS - EMBEDDING_CONTEXT_RESERVE, LOCAL_OVERLAP)


def azure_setup(settings: Settings, **target_options: Any) -> Setup:
    search, openai = settings.search, settings.openai
    if not search.base_url or not search.index:
        raise ConfigError(
            "--target azure needs AZURE_SEARCH_SERVICE (or AZURE_SEARCH_ENDPOINT) and AZURE_SEARCH_INDEX"
        )
    from indexing.azure_target import AzureSearchTarget

    spec = IndexSpec.from_settings(search, openai)
    embedder: Embedder | None = None
    if spec.vector_field:
        if not openai.embedding_name:
            raise ConfigError(
                f"the index has the vector field {spec.vector_field!r}: set AZURE_OPENAI_EMBEDDING_NAME "
                "to the embeddings deployment that fills it"
            )
        from rag.azure.embeddings import AzureEmbedder

        embedder = AzureEmbedder.from_settings(settings)
    key = openai.embedding_key or openai.key
    options: dict[str, Any] = {"vectorizer_key": key.get_secret_value() if key else None, **target_options}
    if search.key:
        target = AzureSearchTarget.with_key(spec, search.base_url, search.key.get_secret_value(), **options)
    else:
        from azure.identity.aio import DefaultAzureCredential

        target = AzureSearchTarget(spec, search.base_url, DefaultAzureCredential(), **options)
    return Setup(target, embedder, AZURE_CHUNK_TOKENS, AZURE_OVERLAP, embed_concurrency=4)


def build_setup(settings: Settings, name: TargetName) -> Setup:
    return azure_setup(settings) if name == "azure" else local_setup(settings)
