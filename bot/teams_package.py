"""The Teams app package: fill the manifest template, check it, zip it with the icons.

The template, icons and the v1.29 schema live in `manifests/teams/` and ship in the wheel (the
`manifests` namespace package), so nothing is read from outside the installed project.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from jsonschema import Draft4Validator
from PIL import Image, UnidentifiedImageError

from bot.settings import BotSettings
from rag.errors import ConfigError

MANIFEST_VERSION = "1.29"
SCHEMA_FILE = f"MicrosoftTeams.schema.v{MANIFEST_VERSION}.json"
ICON_SIZES = {"color": (192, 192), "outline": (32, 32)}
GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+$")
PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""Fixed entry timestamps: the same inputs give the same zip, byte for byte."""


def template_dir() -> Path:
    """`manifests/teams` of this installation (a checkout, an editable or a wheel install)."""
    spec = importlib.util.find_spec("manifests.teams")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "manifest.json").is_file():
            return Path(location)
    raise ConfigError("the Teams manifest template (manifests/teams/manifest.json) is not installed")


def public_hostname(value: str | None) -> str:
    """The bare host name from `RAGBOT_PUBLIC_HOSTNAME` (a scheme, port or path is tolerated)."""
    if not value or not value.strip():
        raise ConfigError(
            "RAGBOT_PUBLIC_HOSTNAME is not set: give the public host name Teams reaches the bot on, "
            "e.g. RAGBOT_PUBLIC_HOSTNAME=ragbot.contoso.com"
        )
    text = value.strip()
    try:
        host = urlsplit(text if "://" in text else f"//{text}").hostname or ""
    except ValueError:
        host = ""
    if not HOSTNAME.match(host):
        raise ConfigError(f"RAGBOT_PUBLIC_HOSTNAME={value!r} is not a host name like ragbot.contoso.com")
    return host


def guid(value: str | None, variable: str) -> str:
    if not value or not value.strip():
        raise ConfigError(
            f"{variable} is not set: give the bot's Microsoft Entra application (client) id, "
            "a GUID like 00000000-0000-0000-0000-000000000000"
        )
    if not GUID.match(value.strip()):
        raise ConfigError(f"{variable}={value!r} is not a GUID like 00000000-0000-0000-0000-000000000000")
    return value.strip().lower()


def _fill(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return PLACEHOLDER.sub(lambda match: values[match.group(1)], node)
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _fill(item, values) for key, item in node.items()}
    return node


def build_manifest(
    settings: BotSettings,
    *,
    version: str,
    teams_app_id: str | None = None,
    developer: str | None = None,
    template: Path | None = None,
) -> dict[str, Any]:
    """The template filled from settings: bot id `MicrosoftAppId`, host `RAGBOT_PUBLIC_HOSTNAME`.

    The Teams app id defaults to the bot id, as for most single-bot apps.
    """
    bot_id = guid(settings.app_id, "MicrosoftAppId")
    values = {
        "BOT_ID": bot_id,
        "TEAMS_APP_ID": guid(teams_app_id, "--app-id") if teams_app_id else bot_id,
        "HOSTNAME": public_hostname(settings.public_hostname),
        "APP_NAME": settings.app_name,
        "DEVELOPER_NAME": developer or settings.app_name,
        "VERSION": version,
    }
    path = (template or template_dir()) / "manifest.json"
    return dict(_fill(json.loads(path.read_text(encoding="utf-8")), values))


def _icon_problems(role: str, name: str, data: bytes | None) -> list[str]:
    if data is None:
        return [f"icons.{role}: {name} is missing"]
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        return [f"icons.{role}: {name} is not an image ({exc})"]
    problems = []
    if image.format != "PNG":
        problems.append(f"icons.{role}: {name} is {image.format}, not PNG")
    if image.size != ICON_SIZES[role]:
        width, height = ICON_SIZES[role]
        problems.append(f"icons.{role}: {name} is {image.size[0]}x{image.size[1]}, not {width}x{height}")
    if role == "outline":
        pixels = np.asarray(image.convert("RGBA"))
        alpha = pixels[..., 3]
        if alpha.min() != 0:
            problems.append(f"icons.outline: {name} has no transparent background")
        drawn = pixels[alpha > 0][:, :3]
        if drawn.size == 0 or drawn.min() < 200:
            problems.append(f"icons.outline: {name} must be drawn in white only")
    return problems


def manifest_problems(
    manifest: Mapping[str, Any], files: Mapping[str, bytes], schema: Mapping[str, Any]
) -> list[str]:
    """Everything wrong with the package: schema errors plus what the schema cannot say.

    The schema claims draft-04, whose validator ignores `const`, so the manifest version is checked
    here; so are the GUIDs, leftover placeholders, and the icons' format, size and transparency.
    """
    problems = [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(
            Draft4Validator(schema).iter_errors(manifest), key=lambda e: list(e.absolute_path)
        )
    ]
    if manifest.get("manifestVersion") != MANIFEST_VERSION:
        problems.append(f"manifestVersion: {manifest.get('manifestVersion')!r} is not {MANIFEST_VERSION!r}")
    ids = [("id", manifest.get("id"))] + [
        (f"bots/{index}/botId", bot.get("botId")) for index, bot in enumerate(manifest.get("bots", []))
    ]
    problems += [f"{where}: {value!r} is not a GUID" for where, value in ids if not GUID.match(str(value))]
    leftovers = sorted(set(PLACEHOLDER.findall(json.dumps(manifest))))
    if leftovers:
        problems.append(f"unfilled placeholders: {', '.join(leftovers)}")
    icons = manifest.get("icons", {})
    for role in ICON_SIZES:
        name = icons.get(role)
        if isinstance(name, str):
            problems += _icon_problems(role, name, files.get(name))
    return problems


def load_schema(folder: Path | None = None) -> dict[str, Any]:
    return dict(json.loads(((folder or template_dir()) / SCHEMA_FILE).read_text(encoding="utf-8")))


def write_package(manifest: Mapping[str, Any], files: Mapping[str, bytes], out: Path) -> Path:
    """A zip with `manifest.json` and the icons at its root (no folder), as Teams expects."""
    out.parent.mkdir(parents=True, exist_ok=True)
    entries = {"manifest.json": json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n", **files}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(
                zipfile.ZipInfo(name, date_time=ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED
            )
    return out


def build_package(
    settings: BotSettings,
    out: Path,
    *,
    version: str,
    teams_app_id: str | None = None,
    developer: str | None = None,
) -> dict[str, Any]:
    """Fill, validate and zip; raises ConfigError listing every problem, writing nothing then."""
    folder = template_dir()
    manifest = build_manifest(settings, version=version, teams_app_id=teams_app_id, developer=developer)
    icons = manifest.get("icons", {})
    files = {name: (folder / name).read_bytes() for name in icons.values() if (folder / name).is_file()}
    problems = manifest_problems(manifest, files, load_schema(folder))
    if problems:
        raise ConfigError("the Teams manifest is not valid:\n  " + "\n  ".join(problems))
    write_package(manifest, files, out)
    return manifest
