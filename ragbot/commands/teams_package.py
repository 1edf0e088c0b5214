"""`ragbot teams-package`: build the Teams app package (manifest + icons) as a zip."""

from __future__ import annotations

import argparse
import sys

HELP = "build the Teams app package (manifest + icons) as a zip"
DESCRIPTION = (
    "Build the Teams app package (manifest + icons) as a zip. Not available yet: issue #8 has not landed."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    print("ragbot teams-package: not available yet (issue #8 has not landed)", file=sys.stderr)
    return 2
