"""`ragbot`: one command line for the whole service. Each sub-command lives in `ragbot.commands.*`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from rag.errors import ConfigError, RagError
from ragbot.logs import redact

COMMANDS = (
    "serve", "index", "ask", "eval", "config", "feedback", "gaps", "summarize", "teams-package",
    "chat", "embed", "image", "raw",
)  # fmt: skip

log = logging.getLogger("ragbot")


class Command(Protocol):
    HELP: str
    DESCRIPTION: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _command(name: str) -> Command:
    return cast(Command, importlib.import_module(f"ragbot.commands.{name.replace('-', '_')}"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragbot",
        description="A retrieval-augmented chat bot for Teams, Web Chat and any Bot Framework channel. "
        "Settings come from the environment and .env (AZURE_OPENAI_*, AZURE_SEARCH_*, MicrosoftApp*, "
        "RAGBOT_*); with no Azure settings it runs on the embedded local index.",
        epilog="Start with `ragbot index samples/helpdesk` then `ragbot serve`; `ragbot config` shows "
        "what is configured. `ragbot COMMAND --help` for each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = _command(name)
        child = sub.add_parser(
            name,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(child)
        child.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"ragbot {args.command}: configuration error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except RagError as exc:
        print(f"ragbot {args.command}: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
