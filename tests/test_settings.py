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


AGENTS = "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__"


@pytest.fixture
def no_bot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MicrosoftAppId", "MicrosoftAppPassword", "MicrosoftAppType", "MicrosoftAppTenantId"):
        monkeypatch.delenv(name, raising=False)
    for name in ("CLIENTID", "CLIENTSECRET", "TENANTID", "AUTHTYPE"):
        monkeypatch.delenv(AGENTS + name, raising=False)


@pytest.mark.usefixtures("no_bot_env")
@pytest.mark.parametrize(
    ("auth_type", "tenant", "app_type", "inbound_tenant"),
    [
        (
            "ClientSecret",
            "11111111-2222-3333-4444-555555555555",
            "SingleTenant",
            "11111111-2222-3333-4444-555555555555",
        ),
        ("ClientSecret", "botframework.com", "MultiTenant", ""),
        (
            "UserManagedIdentity",
            "11111111-2222-3333-4444-555555555555",
            "UserAssignedMSI",
            "11111111-2222-3333-4444-555555555555",
        ),
    ],
)
def test_the_agents_host_reads_the_agents_sdk_names(
    monkeypatch: pytest.MonkeyPatch, auth_type: str, tenant: str, app_type: str, inbound_tenant: str
) -> None:
    monkeypatch.setenv("RAGBOT_BOT_HOST", "agents")
    monkeypatch.setenv(AGENTS + "CLIENTID", "app-1")
    monkeypatch.setenv(AGENTS + "CLIENTSECRET", "secret-1")
    monkeypatch.setenv(AGENTS + "TENANTID", tenant)
    monkeypatch.setenv(AGENTS + "AUTHTYPE", auth_type)
    settings = read_env_model(BotSettings)
    assert (settings.app_id, settings.app_password.get_secret_value()) == ("app-1", "secret-1")
    assert (settings.app_type, settings.inbound_tenant_id) == (app_type, inbound_tenant)
    assert settings.auth_enabled
    monkeypatch.setenv("MicrosoftAppId", "app-1")  # the same value under both names agrees
    assert read_env_model(BotSettings).app_id == "app-1"
    monkeypatch.setenv("RAGBOT_BOT_HOST", "botbuilder")  # botbuilder reads only its own names
    monkeypatch.delenv("MicrosoftAppId")
    assert read_env_model(BotSettings).app_id == ""


@pytest.mark.usefixtures("no_bot_env")
@pytest.mark.parametrize(
    ("ours", "theirs", "named"),
    [
        ({"MicrosoftAppId": "app-1"}, {"CLIENTID": "app-2"}, "MicrosoftAppId and " + AGENTS + "CLIENTID"),
        (
            {"MicrosoftAppPassword": "a"},
            {"CLIENTSECRET": "b"},
            "MicrosoftAppPassword and " + AGENTS + "CLIENTSECRET",
        ),
        (
            {"MicrosoftAppTenantId": "t-1"},
            {"TENANTID": "t-2"},
            "MicrosoftAppTenantId and " + AGENTS + "TENANTID",
        ),
        (
            {"MicrosoftAppType": "UserAssignedMSI"},
            {"AUTHTYPE": "ClientSecret"},
            "MicrosoftAppType=UserAssignedMSI and",
        ),
    ],
)
def test_names_that_disagree_stop_the_agents_host_naming_both(
    monkeypatch: pytest.MonkeyPatch, ours: dict[str, str], theirs: dict[str, str], named: str
) -> None:
    monkeypatch.setenv("RAGBOT_BOT_HOST", "agents")
    for name, value in ours.items():
        monkeypatch.setenv(name, value)
    for name, value in theirs.items():
        monkeypatch.setenv(AGENTS + name, value)
    with pytest.raises(ConfigError) as refused:
        read_env_model(BotSettings)
    assert named in str(refused.value) and "disagree" in str(refused.value)
    assert not str(refused.value).startswith(":")
