"""`ragbot feedback`: list and export the feedback users gave on answers."""

from __future__ import annotations

import argparse
import sys

HELP = "list and export the feedback users gave on answers"
DESCRIPTION = (
    "List and export the feedback users gave on answers. Not available yet: issue #6 has not landed."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    print("ragbot feedback: not available yet (issue #6 has not landed)", file=sys.stderr)
    return 2
