from __future__ import annotations

import pytest

from bot.settings import BotSettings
from rag.errors import ConfigError
from rag.settings import QueryType, choose_backend, load_settings, read_env_model

AZURE_VARS = (
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_RESOURCE",
    "AZURE_OPENAI_MODEL",
    "AZURE_OPENAI_KEY",
    "AZURE_SEARCH_SERVICE",
    "AZURE_SEARCH_ENDPOINT",
    "AZURE_SEARCH_INDEX",
    "AZURE_SEARCH_KEY",
    "AZURE_SEARCH_KNOWLEDGE_BASE",
    "AZURE_SEARCH_KNOWLEDGE_SOURCE",
    "RAGBOT_BACKEND",
    "RAGBOT_LLM_BASE_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in AZURE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_no_azure_settings_selects_local() -> None:
    choice = choose_backend(load_settings())
    assert choice.name == "local"
    assert "no Azure settings" in choice.reason


def test_azure_openai_and_search_select_grounded_after_the_retirement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_RESOURCE", "contoso-aoai")
    monkeypatch.setenv("AZURE_OPENAI_MODEL", "gpt-4o")
    monkeypatch.setenv("AZURE_SEARCH_SERVICE", "contoso-search")
    monkeypatch.setenv("AZURE_SEARCH_INDEX", "kb")
    settings = load_settings()
    assert settings.openai.base_url == "https://contoso-aoai.openai.azure.com"
    assert settings.search.base_url == "https://contoso-search.search.windows.net"
    choice = choose_backend(settings)
    assert choice.name == "grounded"
    assert "Azure AI Search is searched" in choice.reason and "'gpt-4o' writes the answer" in choice.reason
    assert "retired on 2026-10-14" in choice.reason and "RAGBOT_BACKEND=on_your_data" in choice.reason
    monkeypatch.setenv("AZURE_SEARCH_KNOWLEDGE_BASE", "kb-agentic")
    assert "the knowledge base 'kb-agentic' is searched" in choose_backend(load_settings()).reason
    monkeypatch.setenv("RAGBOT_BACKEND", "on_your_data")
    choice = choose_backend(load_settings())
    assert choice.name == "on_your_data" and "retired" in choice.reason


def test_a_knowledge_base_needs_a_knowledge_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_SEARCH_SERVICE", "contoso-search")
    monkeypatch.setenv("AZURE_SEARCH_KNOWLEDGE_BASE", "kb-agentic")
    with pytest.raises(ConfigError, match="AZURE_SEARCH_KNOWLEDGE_SOURCE"):
        load_settings()
    monkeypatch.setenv("AZURE_SEARCH_KNOWLEDGE_SOURCE", "ks")
    settings = load_settings()
    assert settings.search.configured and settings.search.knowledge_source_name == "ks"


def test_search_endpoint_wins_over_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_SEARCH_SERVICE", "ignored")
    monkeypatch.setenv("AZURE_SEARCH_ENDPOINT", "https://search.example.net/")
    assert load_settings().search.base_url == "https://search.example.net"


def test_strictness_out_of_range_names_variable_and_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_SEARCH_STRICTNESS", "7")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "AZURE_SEARCH_STRICTNESS='7'" in message
    assert "1-5" in message


def test_unknown_api_version_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_PREVIEW_API_VERSION", "2022-01-01")
    with pytest.raises(ConfigError, match=r"AZURE_OPENAI_PREVIEW_API_VERSION.*2024-10-21"):
        load_settings()


def test_sample_app_list_and_enum_spellings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_SEARCH_CONTENT_COLUMNS", "content|summary")
    monkeypatch.setenv("AZURE_SEARCH_QUERY_TYPE", "vectorSemanticHybrid")
    monkeypatch.setenv("AZURE_OPENAI_STOP_SEQUENCE", "###,END")
    settings = load_settings()
    assert settings.search.content_columns == ["content", "summary"]
    assert settings.search.query_type is QueryType.vector_semantic_hybrid
    assert settings.openai.stop_sequence == ["###", "END"]


def test_dotenv_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("AZURE_SEARCH_TOP_K=9\nMicrosoftAppId=abc\n")
    assert load_settings().search.top_k == 9
    assert read_env_model(BotSettings).app_id == "abc"


def test_bot_settings_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MicrosoftAppType", "Nobody")
    with pytest.raises(ConfigError, match="MicrosoftAppType='Nobody'"):
        read_env_model(BotSettings)


def test_on_your_data_forced_without_settings_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGBOT_BACKEND", "on_your_data")
    with pytest.raises(ConfigError, match="AZURE_SEARCH_INDEX"):
        load_settings()
