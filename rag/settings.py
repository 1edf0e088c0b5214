"""Settings of the answer layer, read from the environment and `.env`.

Variable names are those of Microsoft's sample-app-aoai-chatGPT, so an existing `.env` works unchanged.
No Azure settings at all selects the embedded default (local index, extractive answers).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rag.errors import ConfigError

ENV_FILE = ".env"
_S = TypeVar("_S", bound="BaseSettings")

LEGACY_API_VERSIONS = ("2023-06-01-preview", "2023-08-01-preview", "2023-12-01-preview")
MODERN_API_VERSIONS = ("2024-02-15-preview", "2024-10-21", "2025-04-01-preview")
SUPPORTED_API_VERSIONS = LEGACY_API_VERSIONS + MODERN_API_VERSIONS
DEFAULT_API_VERSION = "2024-10-21"


class QueryType(StrEnum):
    simple = "simple"
    semantic = "semantic"
    vector = "vector"
    vector_simple_hybrid = "vector_simple_hybrid"
    vector_semantic_hybrid = "vector_semantic_hybrid"

    @property
    def uses_vectors(self) -> bool:
        return self.value.startswith("vector")

    @property
    def uses_semantic(self) -> bool:
        return self in (QueryType.semantic, QueryType.vector_semantic_hybrid)


_CAMEL_QUERY_TYPES = {
    "vectorSimpleHybrid": "vector_simple_hybrid",
    "vectorSemanticHybrid": "vector_semantic_hybrid",
}


def _split_list(value: Any) -> Any:
    """Accept `a,b`, `a|b` (the sample app's separator) or a JSON list for list-valued variables."""
    if value is None or isinstance(value, list):
        return value
    text = str(value).strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    sep = "|" if "|" in text else ","
    return [part.strip() for part in text.split(sep) if part.strip()]


class _Base(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )


class AzureOpenAISettings(_Base):
    """`AZURE_OPENAI_*`: the chat deployment, its generation knobs and the embeddings deployment."""

    model_config = SettingsConfigDict(env_prefix="AZURE_OPENAI_")

    endpoint: str | None = None
    resource: str | None = None
    key: SecretStr | None = None
    model: str | None = Field(default=None, description="chat deployment name")
    model_name: str | None = Field(default=None, description="the deployed model, e.g. gpt-4.1")
    preview_api_version: str = DEFAULT_API_VERSION
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, ge=0.0, le=1.0)
    max_tokens: int = Field(default=1000, ge=1, le=128_000)
    stop_sequence: Annotated[list[str], NoDecode] = Field(default_factory=list)
    seed: int | None = None
    choices_count: int = Field(default=1, ge=1, le=10)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, int] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    system_message: str = (
        "You are an AI assistant that helps people find information in the company's knowledge base."
    )
    stream: bool = True
    embedding_name: str | None = None
    embedding_endpoint: str | None = None
    embedding_key: SecretStr | None = None
    embedding_dimensions: int | None = Field(default=None, ge=1, le=4096)

    @field_validator("stop_sequence", mode="before")
    @classmethod
    def _stops(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("preview_api_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value not in SUPPORTED_API_VERSIONS:
            raise ValueError(f"unknown api-version {value!r}; supported: {', '.join(SUPPORTED_API_VERSIONS)}")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)

    @property
    def base_url(self) -> str | None:
        """`AZURE_OPENAI_ENDPOINT` wins; otherwise built from `AZURE_OPENAI_RESOURCE`."""
        if self.endpoint:
            return self.endpoint.rstrip("/")
        if self.resource:
            return f"https://{self.resource}.openai.azure.com"
        return None

    @property
    def legacy_dialect(self) -> bool:
        return self.preview_api_version in LEGACY_API_VERSIONS


class AzureSearchSettings(_Base):
    """`AZURE_SEARCH_*`: the index the bot answers from and the retrieval knobs of On Your Data."""

    model_config = SettingsConfigDict(env_prefix="AZURE_SEARCH_")

    service: str | None = None
    endpoint: str | None = None
    index: str | None = None
    key: SecretStr | None = None
    managed_identity_resource_id: str | None = None
    access_token: SecretStr | None = None
    top_k: int = Field(default=5, ge=1, le=50)
    strictness: int = Field(default=3, ge=1, le=5)
    enable_in_domain: bool = True
    query_type: QueryType = QueryType.simple
    semantic_search_config: str = "default"
    content_columns: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["content"])
    content_columns_separator: str = "\n"
    title_column: str | None = "title"
    url_column: str | None = "url"
    filename_column: str | None = "filepath"
    vector_columns: Annotated[list[str], NoDecode] = Field(default_factory=list)
    filter: str | None = None
    permitted_groups_column: str | None = None
    permitted_users_column: str | None = None
    max_search_queries: int | None = Field(default=None, ge=1, le=20)
    allow_partial_result: bool | None = None
    include_contexts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    use_integrated_vectorization: bool = False
    knowledge_base: str | None = Field(default=None, description="agentic retrieval from this knowledge base")
    knowledge_source: str | None = Field(default=None, description="its knowledge source (default: index)")
    reranker_threshold: float | None = Field(default=None, ge=0.0, le=4.0)
    max_output_tokens: int | None = Field(default=None, ge=1, le=1_000_000)

    @field_validator("content_columns", "vector_columns", "include_contexts", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("query_type", mode="before")
    @classmethod
    def _query_type(cls, value: Any) -> Any:
        return _CAMEL_QUERY_TYPES.get(value, value) if isinstance(value, str) else value

    @field_validator("include_contexts")
    @classmethod
    def _contexts(cls, value: list[str]) -> list[str]:
        allowed = {"citations", "intent", "all_retrieved_documents"}
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ValueError(f"unknown context {bad[0]!r}; allowed: {', '.join(sorted(allowed))}")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.base_url and (self.index or self.knowledge_base))

    @property
    def knowledge_source_name(self) -> str | None:
        """`AZURE_SEARCH_KNOWLEDGE_SOURCE`, else the index's name (what `ragbot index` names it)."""
        return self.knowledge_source or self.index

    @property
    def base_url(self) -> str | None:
        """`AZURE_SEARCH_ENDPOINT` (a full URL) wins over `AZURE_SEARCH_SERVICE`."""
        if self.endpoint:
            return self.endpoint.rstrip("/")
        if self.service:
            return f"https://{self.service}.search.windows.net"
        return None


Backend = Literal["auto", "on_your_data", "grounded", "local"]
Generator = Literal["auto", "azure", "openai", "extractive"]


class RagSettings(_Base):
    """`RAGBOT_*` settings of the answer layer: which backend, where local state lives, other models."""

    model_config = SettingsConfigDict(env_prefix="RAGBOT_")

    backend: Backend = "auto"
    generator: Generator = "auto"
    data_dir: Path = Path("data")
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_organization: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RAGBOT_LLM_ORGANIZATION", "OPENAI_ORGANIZATION"),
        description="sent as the OpenAI-Organization header (an OpenAI key in several organizations)",
    )
    history_tokens: int = Field(default=2000, ge=0, le=100_000)
    request_timeout: float = Field(default=60.0, gt=0, le=600)
    retry_budget: float = Field(default=60.0, ge=0, le=600)
    rate_limit_calls: int = Field(default=1000, ge=1)
    rate_limit_period: float = Field(default=60.0, gt=0)

    @property
    def local_index_path(self) -> Path:
        return self.data_dir / "index.sqlite"


class Settings(BaseModel):
    """Everything `rag` reads, grouped; built once at start-up by :func:`load_settings`."""

    openai: AzureOpenAISettings
    search: AzureSearchSettings
    ragbot: RagSettings

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        backend = self.ragbot.backend
        if backend == "on_your_data" and not (
            self.openai.configured and self.search.base_url and self.search.index
        ):
            raise ValueError(
                "RAGBOT_BACKEND=on_your_data needs AZURE_OPENAI_ENDPOINT (or _RESOURCE), AZURE_OPENAI_MODEL, "
                "AZURE_SEARCH_SERVICE (or _ENDPOINT) and AZURE_SEARCH_INDEX"
            )
        if self.search.knowledge_base and not self.search.knowledge_source_name:
            raise ValueError(
                "AZURE_SEARCH_KNOWLEDGE_BASE needs its knowledge source: set AZURE_SEARCH_KNOWLEDGE_SOURCE "
                "(or AZURE_SEARCH_INDEX, whose name `ragbot index --knowledge-base` gives the source)"
            )
        return self


class BackendChoice(BaseModel):
    """The active answer backend and the reason it was chosen (shown by `ragbot config`)."""

    name: Literal["on_your_data", "grounded", "local"]
    reason: str


ON_YOUR_DATA_RETIRED = "2026-10-14"


def choose_backend(settings: Settings) -> BackendChoice:
    """Resolve `RAGBOT_BACKEND=auto` the way the README documents it.

    On Your Data was retired on 2026-10-14, so `auto` never picks it: with Azure OpenAI and Azure AI
    Search configured, the grounded pipeline searches the index (or the knowledge base) itself and the
    chat deployment writes the answer. On Your Data runs only when asked for by name."""
    chosen = settings.ragbot.backend
    aoai, search = settings.openai.configured, settings.search.configured
    if chosen == "on_your_data":
        return BackendChoice(
            name=chosen,
            reason=f"RAGBOT_BACKEND=on_your_data (On Your Data was retired on {ON_YOUR_DATA_RETIRED}; "
            "RAGBOT_BACKEND=auto or grounded answers from the same index with any chat model)",
        )
    if chosen != "auto":
        return BackendChoice(name=chosen, reason=f"RAGBOT_BACKEND={chosen}")
    retriever = (
        f"the knowledge base {settings.search.knowledge_base!r}"
        if settings.search.knowledge_base
        else "Azure AI Search"
    )
    if aoai and search:
        return BackendChoice(
            name="grounded",
            reason=f"Azure OpenAI and Azure AI Search are configured: {retriever} is searched and "
            f"{settings.openai.model!r} writes the answer (On Your Data was retired on "
            f"{ON_YOUR_DATA_RETIRED}; RAGBOT_BACKEND=on_your_data still selects it)",
        )
    if search or settings.ragbot.llm_base_url:
        return BackendChoice(
            name="grounded",
            reason=f"{retriever if search else 'an OpenAI-compatible model'} is configured without "
            "Azure OpenAI",
        )
    if aoai:
        return BackendChoice(
            name="grounded",
            reason="Azure OpenAI is configured without Azure AI Search: the local index is searched "
            "and the Azure model writes the answer",
        )
    return BackendChoice(
        name="local",
        reason="no Azure settings found: embedded local index and extractive answers",
    )


def load_settings(env_file: str | None = ENV_FILE) -> Settings:
    """Read the settings; a bad value raises :class:`ConfigError` naming the variable and the rule."""
    parts = {
        "openai": read_env_model(AzureOpenAISettings, env_file),
        "search": read_env_model(AzureSearchSettings, env_file),
        "ragbot": read_env_model(RagSettings, env_file),
    }
    try:
        return Settings.model_validate(parts)
    except ValidationError as exc:
        raise ConfigError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None


def read_env_model(model: type[_S], env_file: str | None = ENV_FILE) -> _S:
    """Build one settings model, turning a validation error into a message an operator can act on."""
    try:
        return model(_env_file=env_file)
    except ValidationError as exc:
        prefix = str(model.model_config.get("env_prefix", ""))
        raise ConfigError("; ".join(_describe(model, prefix, err) for err in exc.errors())) from None


def _describe(model: type[BaseSettings], prefix: str, err: Any) -> str:
    name = str(err["loc"][0]) if err["loc"] else ""
    field = model.model_fields.get(name) or _field_by_alias(model, name)
    variable = _variable_name(field, prefix + name) if name else prefix.rstrip("_")
    message = str(err["msg"]).removeprefix("Value error, ")
    allowed = _allowed_range(field) if field else ""
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f"={value!r}"
    if not variable:  # a check of the whole model: its message names the variables
        return f"{message}{allowed}"
    return f"{variable}{shown}: {message}{allowed}"


def _field_by_alias(model: type[BaseSettings], alias: str) -> Any:
    for field in model.model_fields.values():
        choices = field.validation_alias
        names = choices.choices if isinstance(choices, AliasChoices) else [choices]
        if any(isinstance(n, str) and n.lower() == alias.lower() for n in names):
            return field
    return None


def _variable_name(field: Any, default: str) -> str:
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return alias if isinstance(alias, str) else default.upper()


def _allowed_range(field: Any) -> str:
    low = high = None
    for rule in field.metadata:
        low = getattr(rule, "ge", None) if getattr(rule, "ge", None) is not None else low
        high = getattr(rule, "le", None) if getattr(rule, "le", None) is not None else high
    if low is not None and high is not None:
        return f" (allowed: {low}-{high})"
    return ""
