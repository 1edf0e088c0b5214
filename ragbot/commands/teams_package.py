"""`ragbot teams-package`: build the Teams app package (manifest + icons) as a zip."""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path

from ragbot.commands._common import init

HELP = "build the Teams app package (manifest + icons) as a zip"
DESCRIPTION = """\
Build the Teams app package: manifests/teams/manifest.json filled from the settings, checked against
the Teams manifest schema v1.29 (plus icon sizes, transparency and GUIDs), zipped with the icons.

Reads MicrosoftAppId (the bot's Entra app id, also used as the Teams app id unless --app-id is
given), RAGBOT_PUBLIC_HOSTNAME (the host Teams reaches the bot on) and RAGBOT_APP_NAME.
Upload the zip in Teams: Apps > Manage your apps > Upload an app.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("build/appPackage.zip"), help="zip to write (build/appPackage.zip)"
    )
    parser.add_argument("--app-id", help="Teams app id (a GUID); default: the bot's MicrosoftAppId")
    parser.add_argument(
        "--version",
        dest="app_version",
        default=version("ragbot"),
        help="app version (semver); raise it for every upload that changes the package",
    )
    parser.add_argument("--developer", help="developer name shown in Teams (default: the app name)")


def run(args: argparse.Namespace) -> int:
    settings = init()
    from bot.teams_package import MANIFEST_VERSION, build_package  # jsonschema and Pillow: only to run

    manifest = build_package(
        settings.bot, args.out, version=args.app_version, teams_app_id=args.app_id, developer=args.developer
    )
    print(
        f"wrote {args.out} (manifest {MANIFEST_VERSION}, app {manifest['name']['short']!r} "
        f"{manifest['version']}, bot {manifest['bots'][0]['botId']}, host {manifest['validDomains'][0]})"
    )
    return 0
