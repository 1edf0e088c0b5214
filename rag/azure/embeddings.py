"""Azure OpenAI embeddings (`/embeddings`), batched, through the shared client (same auth and retries).

Used by the indexer (document vectors) and by the grounded backend (query vectors).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from rag.azure.client import AzureOpenAIClient, transport_options
from rag.azure.dialects import Dialect, dialect, versions_with
from rag.errors import ConfigError, DataSourceError
from rag.index_spec import IndexSpec
from rag.settings import Settings

DEFAULT_BATCH = 16  # inputs per request: the limit of the oldest Azure OpenAI embedding deployments


class AzureEmbedder:
    """`embed(texts)` -> float32 array (len(texts), dimensions), in input order."""

    def __init__(
        self,
        client: AzureOpenAIClient,
        *,
        deployment: str,
        dimensions: int,
        api_dialect: Dialect,
        send_dimensions: bool = False,
        input_type: str | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        if send_dimensions and not api_dialect.embeddings_dimensions:
            raise ConfigError(
                f"AZURE_OPENAI_EMBEDDING_DIMENSIONS is not supported by embeddings in api-version "
                f"{api_dialect.version}; it needs one of: {versions_with('embeddings_dimensions')}"
            )
        if input_type and not api_dialect.embeddings_input_type:
            raise ConfigError(
                f"embedding input_type is not supported by api-version {api_dialect.version}; "
                f"it needs one of: {versions_with('embeddings_input_type')}"
            )
        self.client, self.deployment = client, deployment
        self.name = f"azure-openai:{deployment}"
        self.dimensions = dimensions
        self._send_dimensions, self._input_type = send_dimensions, input_type
        self.batch_size = max(1, batch_size)

    @classmethod
    def from_settings(cls, settings: Settings, *, input_type: str | None = None) -> AzureEmbedder:
        """The embedding deployment of `AZURE_OPENAI_EMBEDDING_*` (its own endpoint and key when given)."""
        openai, rag = settings.openai, settings.ragbot
        spec = IndexSpec.from_settings(settings.search, openai)
        base, deployment = embedding_target(
            openai.embedding_endpoint or openai.base_url, spec.embedding_deployment
        )
        api_dialect = dialect(openai.preview_api_version)
        client = AzureOpenAIClient(
            base_url=base,
            api_version=api_dialect.version,
            api_key=openai.embedding_key or openai.key,
            default_deployment=deployment,
            **transport_options(rag),
        )
        return cls(
            client,
            deployment=deployment,
            dimensions=spec.dimensions,
            api_dialect=api_dialect,
            send_dimensions=openai.embedding_dimensions is not None,
            input_type=input_type,
        )

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows += await self._batch(list(texts[start : start + self.batch_size]))
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.asarray(rows, dtype=np.float32)

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"input": [t if t.strip() else " " for t in texts]}
        if self._send_dimensions:
            body["dimensions"] = self.dimensions
        if self._input_type:
            body["input_type"] = self._input_type
        payload = await self.client.embeddings(body, deployment=self.deployment)
        data = sorted(payload.get("data") or [], key=lambda item: int(item.get("index") or 0))
        if len(data) != len(texts):
            raise DataSourceError(f"{self.name} returned {len(data)} embeddings for {len(texts)} inputs")
        vectors = [list(item.get("embedding") or []) for item in data]
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise DataSourceError(
                    f"{self.name} returned {len(vector)}-dimensional vectors but the index expects "
                    f"{self.dimensions}; set AZURE_OPENAI_EMBEDDING_DIMENSIONS to match the deployment"
                )
        return vectors

    async def aclose(self) -> None:
        await self.client.aclose()


def embedding_target(endpoint: str | None, deployment: str | None) -> tuple[str, str]:
    """(resource base URL, deployment) from a resource URL plus name, or from a full embeddings URL."""
    if not endpoint:
        raise ConfigError("embeddings need AZURE_OPENAI_ENDPOINT (or AZURE_OPENAI_EMBEDDING_ENDPOINT)")
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    marker = "/openai/deployments/"
    if marker in path:
        base = f"{parts.scheme}://{parts.netloc}{path.split(marker)[0]}"
        return base, path.split(marker)[1].split("/")[0]
    if not deployment:
        raise ConfigError("embeddings need AZURE_OPENAI_EMBEDDING_NAME (the embedding deployment)")
    return endpoint.rstrip("/"), deployment
