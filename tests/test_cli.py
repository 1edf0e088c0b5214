"""The command line, run as a user runs it: a real process with a clean environment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.commandline import run_ragbot

ROOT = Path(__file__).resolve().parent.parent


def ragbot(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return run_ragbot(*args, env=env, cwd=cwd or ROOT)


def test_help_lists_every_command() -> None:
    result = ragbot("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


COMMANDS = ["serve", "index", "ask", "config", "feedback", "summarize", "teams-package"]
CONNECTOR = ["chat", "embed", "image", "raw"]


@pytest.mark.parametrize("command", COMMANDS + CONNECTOR)
def test_each_command_has_help(command: str) -> None:
    result = ragbot(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: ragbot " + command in result.stdout
    if command in CONNECTOR:  # the connector actions show how they are called
        assert f"\n  ragbot {command} " in result.stdout


def test_config_masks_secrets_and_names_backend(tmp_path: Path) -> None:
    env = {"AZURE_SEARCH_KEY": "topsecretsearchkey", "AZURE_OPENAI_KEY": "topsecretaoaikey"}
    result = ragbot("config", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "topsecret" not in result.stdout
    data = json.loads(result.stdout)
    assert data["azure_search"]["AZURE_SEARCH_KEY"] == "***"
    assert data["bot"]["MicrosoftAppId"] is not None and data["ragbot"]["RAGBOT_BACKEND"] == "auto"
    assert data["backend"]["active"] == "local"
    assert data["backend"]["trimming"].startswith("on: the local index")
    assert data["bot"]["auth"].startswith("off")


@pytest.mark.parametrize(
    ("columns", "shown"),
    [
        ({}, "security trimming: off: the index has no groups or users field"),
        (
            {"AZURE_SEARCH_PERMITTED_GROUPS_COLUMN": "groups", "AZURE_SEARCH_PERMITTED_USERS_COLUMN": "oids"},
            "security trimming: on: the groups field 'groups' and the users field 'oids'",
        ),
    ],
)
def test_config_says_whether_answers_are_trimmed(tmp_path: Path, columns: dict[str, str], shown: str) -> None:
    env = {"AZURE_SEARCH_SERVICE": "contoso", "AZURE_SEARCH_INDEX": "kb", **columns}
    result = ragbot("config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert shown in result.stdout


def test_config_bad_value_fails_clearly(tmp_path: Path) -> None:
    result = ragbot("config", env={"AZURE_SEARCH_STRICTNESS": "0"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "AZURE_SEARCH_STRICTNESS='0'" in result.stderr and "1-5" in result.stderr
