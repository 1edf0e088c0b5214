"""`ragbot config`: the effective settings, secrets masked, and which answer backend is active and why."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import AliasChoices, BaseModel, SecretStr
from pydantic_settings import BaseSettings

from bot.identity import describe as describe_askers
from bot.state import describe
from rag.settings import Settings, choose_backend
from ragbot.commands._common import load_all
from ragbot.logs import MASK, mask_urls

HELP = "show the effective settings (secrets masked) and the active answer backend"
DESCRIPTION = """Print every setting ragbot reads, from the environment and .env, with secrets masked
(secret settings, the password in a URL, secret URL parameters such as a SAS sig=), and say
which answer backend is active and why:

  grounded      On Your Data semantics on the client: the question is searched in
                Azure AI Search (AZURE_SEARCH_INDEX), an Azure AI Search knowledge base
                (AZURE_SEARCH_KNOWLEDGE_BASE) or the local index, then Azure OpenAI, an
                OpenAI-compatible model or extractive answers write the reply.
                RAGBOT_BACKEND=auto picks it whenever Azure is configured.
  on_your_data  Azure OpenAI chat completions with an azure_search data source; retired
                by Microsoft on 2026-10-14, so only RAGBOT_BACKEND=on_your_data selects it
  local         the embedded default: local index and extractive answers, no cloud

and whether answers are trimmed to what the asker may see (the local index always is; an Azure AI
Search index when AZURE_SEARCH_PERMITTED_GROUPS_COLUMN or _USERS_COLUMN names its fields).

Each setting is shown under the environment variable that sets it (AZURE_SEARCH_TOP_K,
RAGBOT_APP_NAME, MicrosoftAppId, ...). A bad value fails here with the variable's name and the
allowed range."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def env_name(model: BaseModel, field: str) -> str:
    """The environment variable that sets `field` of a settings model: its alias, else prefix + name."""
    info = type(model).model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if isinstance(alias, str):
        return alias
    if not isinstance(model, BaseSettings):
        return field
    return (str(model.model_config.get("env_prefix") or "") + field).upper()


def _masked(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in model.__dict__.items():
        name = env_name(model, field)
        if isinstance(value, SecretStr):
            out[name] = MASK if value.get_secret_value() else None
        elif isinstance(value, BaseModel):
            out[name] = _masked(value)
        else:
            out[name] = _plain(json.loads(json.dumps(value, default=str)))
    return out


def _plain(value: Any) -> Any:
    """A JSON value with the secrets of any URL in it masked (a password in userinfo, `?sig=`)."""
    if isinstance(value, str):
        return mask_urls(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def trimming(settings: Settings, backend: str) -> str:
    """Who may see what (security trimming), as the active backend applies it."""
    search, public = settings.search, "(documents naming neither are everyone's)"
    if backend == "local" or not search.configured:
        return f"on: the local index keeps each document's groups and users {public}"
    columns = (("groups", search.permitted_groups_column), ("users", search.permitted_users_column))
    fields = [f"{what} field {name!r}" for what, name in columns if name]
    if not fields:
        return (
            "off: the index has no groups or users field (AZURE_SEARCH_PERMITTED_GROUPS_COLUMN, "
            "AZURE_SEARCH_PERMITTED_USERS_COLUMN), so every asker sees every document"
        )
    return f"on: the {' and the '.join(fields)} {public}"


def run(args: argparse.Namespace) -> int:
    settings = load_all()
    choice = choose_backend(settings.rag)
    groups = {
        "backend": {
            "active": choice.name,
            "reason": mask_urls(choice.reason),
            "trimming": trimming(settings.rag, choice.name),
        },
        "azure_openai": _masked(settings.rag.openai),
        "azure_search": _masked(settings.rag.search),
        "ragbot": _masked(settings.rag.ragbot),
        "bot": _masked(settings.bot),
        "identity": _masked(settings.identity),
        "logging": _masked(settings.log),
        "telemetry": _masked(settings.telemetry),
    }
    groups["telemetry"]["export"] = settings.telemetry.describe()
    groups["bot"]["auth"] = "on" if settings.bot.auth_enabled else "off (no MicrosoftAppId)"
    groups["bot"]["state"] = describe(settings.bot)
    groups["identity"]["askers"] = describe_askers(
        settings.identity, settings.bot, groups_column=bool(settings.rag.search.permitted_groups_column)
    )
    if args.json:
        print(json.dumps(groups, indent=2))
        return 0
    print(f"answer backend: {choice.name}\n  why: {groups['backend']['reason']}")
    print(f"security trimming: {groups['backend']['trimming']}")
    print(f"conversation state: {groups['bot']['state']}")
    print(f"who asks: {groups['identity']['askers']}")
    for group, values in groups.items():
        if group == "backend":
            continue
        print(f"\n[{group}]")
        for name, value in values.items():
            print(f"  {name} = {value if value not in (None, '', []) else '-'}")
    return 0
