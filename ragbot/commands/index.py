"""`ragbot index`: build or update the search index from folders of documents."""

from __future__ import annotations

import argparse
import sys

HELP = "build or update the search index from folders of documents"
DESCRIPTION = (
    "Build or update the search index from folders of documents. Not available yet: issue #5 has not landed."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    print("ragbot index: not available yet (issue #5 has not landed)", file=sys.stderr)
    return 2
