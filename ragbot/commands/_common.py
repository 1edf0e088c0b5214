"""What every command does first: read and validate settings, set up logging with secrets masked."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel, SecretStr

from bot.identity.settings import IdentitySettings
from bot.settings import BotSettings
from bot.telemetry import TelemetrySettings
from rag.settings import Settings, load_settings, read_env_model
from ragbot.logs import LogSettings, setup_logging


class AllSettings(BaseModel):
    rag: Settings
    bot: BotSettings
    identity: IdentitySettings
    log: LogSettings
    telemetry: TelemetrySettings


def load_all() -> AllSettings:
    """Read every settings model; a bad value raises ConfigError naming the variable."""
    return AllSettings(
        rag=load_settings(),
        bot=read_env_model(BotSettings),
        identity=read_env_model(IdentitySettings),
        log=read_env_model(LogSettings),
        telemetry=read_env_model(TelemetrySettings),
    )


def secret_values(*models: BaseModel) -> list[str]:
    """Every configured secret's plain value, for the log redaction filter."""
    found: list[str] = []
    for model in models:
        for value in model.__dict__.values():
            if isinstance(value, SecretStr) and value.get_secret_value():
                found.append(value.get_secret_value())
            elif isinstance(value, BaseModel):
                found.extend(secret_values(value))
    return found


def init() -> AllSettings:
    settings = load_all()
    setup_logging(
        settings.log, secret_values(settings.rag, settings.bot, settings.telemetry, settings.identity)
    )
    return settings


def write_output(output: str, path: Path | None, wrote: str) -> None:
    """An export to standard output, or to `path` with `wrote <what> to <path>` on standard error (so
    the line never mixes into the export)."""
    if path is None:
        sys.stdout.write(output)
        return
    path.write_text(output, encoding="utf-8")
    print(f"wrote {wrote} to {path}", file=sys.stderr)
