"""The Teams app package: template, validation beyond the schema, zip layout, command line, icons."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.settings import BotSettings
from bot.teams_package import (
    build_manifest,
    build_package,
    load_schema,
    manifest_problems,
    public_hostname,
    template_dir,
)
from rag.errors import ConfigError
from tests.commandline import run_ragbot

ROOT = Path(__file__).resolve().parent.parent
BOT_ID = "8C9F1A2B-1234-4abc-8def-0123456789AB"
SCOPES = ["personal", "team", "groupChat"]


def settings(**values: Any) -> BotSettings:
    values.setdefault("app_id", BOT_ID)
    values.setdefault("public_hostname", "ragbot.contoso.com")
    return BotSettings(_env_file=None, **values)  # type: ignore[call-arg]


def icons() -> dict[str, bytes]:
    return {name: (template_dir() / name).read_bytes() for name in ("color.png", "outline.png")}


def png(size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_package_has_manifest_and_icons_at_the_root(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "appPackage.zip"
    build_package(settings(app_name="HR Helper"), out, version="1.2.3")
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(archive.read("manifest.json"))
        files = {name: archive.read(name) for name in ("color.png", "outline.png")}
    assert manifest_problems(manifest, files, load_schema()) == []
    assert manifest["manifestVersion"] == "1.29" and manifest["version"] == "1.2.3"
    assert manifest["id"] == manifest["bots"][0]["botId"] == BOT_ID.lower()
    assert manifest["validDomains"] == ["ragbot.contoso.com"]
    assert manifest["name"]["short"] == "HR Helper" and manifest["developer"]["name"] == "HR Helper"
    assert manifest["developer"]["websiteUrl"] == "https://ragbot.contoso.com/"
    bot = manifest["bots"][0]
    assert bot["scopes"] == SCOPES
    assert bot["commandLists"][0]["scopes"] == SCOPES
    assert [command["title"] for command in bot["commandLists"][0]["commands"]] == ["help", "reset"]
    assert "{{" not in json.dumps(manifest)


def test_same_inputs_give_the_same_zip(tmp_path: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build_package(settings(), first, version="1.0.0")
    build_package(settings(), second, version="1.0.0")
    assert first.read_bytes() == second.read_bytes()


def test_separate_teams_app_id_and_developer() -> None:
    manifest = build_manifest(
        settings(),
        version="1.0.0",
        teams_app_id="11111111-2222-3333-4444-555555555555",
        developer="Contoso IT",
    )
    assert manifest["id"] == "11111111-2222-3333-4444-555555555555"
    assert manifest["bots"][0]["botId"] == BOT_ID.lower()
    assert manifest["developer"]["name"] == "Contoso IT"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"app_id": ""}, "MicrosoftAppId is not set"),
        ({"app_id": "my-bot"}, "MicrosoftAppId='my-bot' is not a GUID"),
        ({"public_hostname": None}, "RAGBOT_PUBLIC_HOSTNAME is not set"),
        ({"public_hostname": "  "}, "RAGBOT_PUBLIC_HOSTNAME is not set"),
        ({"public_hostname": "not a host"}, "is not a host name"),
        ({"public_hostname": "localhost"}, "is not a host name"),
    ],
)
def test_missing_or_malformed_settings_are_named(
    values: dict[str, Any], message: str, tmp_path: Path
) -> None:
    out = tmp_path / "app.zip"
    with pytest.raises(ConfigError, match=message):
        build_package(settings(**values), out, version="1.0.0")
    assert not out.exists()


def test_host_name_accepts_a_url() -> None:
    assert public_hostname("https://Bot.Contoso.com:443/api/messages") == "bot.contoso.com"
    assert public_hostname("ragbot-prod.azurewebsites.net") == "ragbot-prod.azurewebsites.net"


def test_bad_app_id_option_is_named() -> None:
    with pytest.raises(ConfigError, match="--app-id='x' is not a GUID"):
        build_manifest(settings(), version="1.0.0", teams_app_id="x")


def valid_manifest() -> dict[str, Any]:
    return build_manifest(settings(), version="1.0.0")


def test_checks_what_the_schema_cannot_express() -> None:
    schema = load_schema()
    manifest = valid_manifest() | {"manifestVersion": "1.17"}
    assert manifest_problems(manifest, icons(), schema) == ["manifestVersion: '1.17' is not '1.29'"]
    broken = valid_manifest()
    broken["bots"][0]["botId"] = "{{BOT_ID}}"
    problems = manifest_problems(broken, icons(), schema)
    assert "bots/0/botId: '{{BOT_ID}}' is not a GUID" in problems
    assert "unfilled placeholders: BOT_ID" in problems


def test_schema_errors_are_reported_with_their_path() -> None:
    manifest = valid_manifest() | {"packageName": "com.contoso.ragbot"}
    manifest["bots"][0]["scopes"] = ["personal", "groupchat"]
    manifest["name"]["short"] = "x" * 31
    problems = "\n".join(manifest_problems(manifest, icons(), load_schema()))
    assert "'packageName' was unexpected" in problems
    assert "bots/0/scopes/1: 'groupchat' is not one of" in problems
    assert "name/short: " in problems


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("color.png", None, "icons.color: color.png is missing"),
        ("color.png", png((96, 96), (68, 100, 238)), "icons.color: color.png is 96x96, not 192x192"),
        ("color.png", b"not an image", "icons.color: color.png is not an image"),
        ("outline.png", png((32, 32), (255, 255, 255, 255)), "has no transparent background"),
        ("outline.png", png((32, 32), (255, 255, 255), mode="RGB"), "has no transparent background"),
        ("outline.png", png((32, 32), (68, 100, 238, 128)), "must be drawn in white only"),
        ("outline.png", png((32, 32), (0, 0, 0, 0)), "must be drawn in white only"),
    ],
)
def test_icon_problems(name: str, data: bytes | None, message: str) -> None:
    files = icons()
    if data is None:
        del files[name]
    else:
        files[name] = data
    problems = manifest_problems(valid_manifest(), files, load_schema())
    assert any(message in problem for problem in problems), problems


def test_committed_icons_are_what_the_script_draws(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_icons.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for name in ("color.png", "outline.png"):
        assert (tmp_path / name).read_bytes() == (ROOT / "manifests" / "teams" / name).read_bytes(), name


def test_schema_copy_matches_its_recorded_provenance() -> None:
    schema = template_dir() / "MicrosoftTeams.schema.v1.29.json"
    digest = hashlib.sha256(schema.read_bytes()).hexdigest()
    assert digest in (template_dir() / "SOURCES.md").read_text(encoding="utf-8")
    assert template_dir() == ROOT / "manifests" / "teams"


def test_command_line_writes_the_zip_and_names_missing_settings(tmp_path: Path) -> None:
    env = {
        "MicrosoftAppId": BOT_ID,
        "RAGBOT_PUBLIC_HOSTNAME": "bot.contoso.com",
        "RAGBOT_APP_NAME": "IT Desk",
    }
    done = run_ragbot("teams-package", "--version", "2.0.1", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(tmp_path / "build" / "appPackage.zip") as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert (manifest["name"]["short"], manifest["version"]) == ("IT Desk", "2.0.1")
    assert "bot.contoso.com" in done.stdout

    missing = run_ragbot(
        "teams-package", "--out", "x.zip", env={"RAGBOT_PUBLIC_HOSTNAME": "bot.contoso.com"}, cwd=tmp_path
    )
    assert missing.returncode == 2
    assert "MicrosoftAppId is not set" in missing.stderr and not (tmp_path / "x.zip").exists()
    no_host = run_ragbot("teams-package", "--out", "x.zip", env={"MicrosoftAppId": BOT_ID}, cwd=tmp_path)
    assert no_host.returncode == 2 and "RAGBOT_PUBLIC_HOSTNAME is not set" in no_host.stderr
