"""`ragbot feedback`: list and export the feedback users gave on answers."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bot.feedback import FeedbackRecord, list_feedback, to_csv, to_json
from bot.settings import BotSettings
from bot.state import STATE_FILE, StateStore, StoreUnavailable, build_store
from bot.state.sqlite import SqliteStore
from ragbot.commands._common import init, write_output

HELP = "list and export the feedback users gave on answers"
DESCRIPTION = """List the thumbs up/down and comments users gave on answers in Teams, each with the
rated answer: question, answer, citations and search intent. Read from the store the server
keeps them in (RAGBOT_STORAGE: the SQLite file under RAGBOT_DATA_DIR by default, or Redis,
Blob storage or Cosmos DB), also while the server runs.

  ragbot feedback                        a table, newest last
  ragbot feedback --reaction dislike     only thumbs down
  ragbot feedback --format csv -o fb.csv export for a spreadsheet
  ragbot feedback --format json          everything, as JSON"""

COMMENT_CHARS = 60
QUESTION_CHARS = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    parser.add_argument("--reaction", choices=("like", "dislike"), help="only this reaction")
    parser.add_argument("-o", "--output", type=Path, help="write to this file instead of standard output")


async def load(store: StateStore) -> list[FeedbackRecord]:
    try:
        return await list_feedback(store)
    finally:
        await store.aclose()


def server_store(settings: BotSettings) -> StateStore | None:
    """The server's store; SQLite is read beside the running server (not as its owner), or None when
    it was never created."""
    if settings.storage == "sqlite":
        path = settings.data_dir / STATE_FILE
        return SqliteStore(path) if path.is_file() else None
    return build_store(settings)


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def table(records: list[FeedbackRecord]) -> str:
    if not records:
        return "no feedback yet\n"
    lines = [f"{'when':<25} {'reaction':<8} {'question':<{QUESTION_CHARS}} comment"]
    for r in records:
        lines.append(
            f"{r.at:<25} {r.reaction:<8} {_short(r.question or '?', QUESTION_CHARS):<{QUESTION_CHARS}} "
            f"{_short(r.comment, COMMENT_CHARS)}"
        )
    likes = sum(r.reaction == "like" for r in records)
    lines.append(f"\n{len(records)} ratings: {likes} like, {len(records) - likes} dislike")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    settings = init().bot
    store = server_store(settings)
    try:
        records = asyncio.run(load(store)) if store is not None else []
    except StoreUnavailable as exc:
        print(f"ragbot feedback: cannot read {store and store.name}: {exc}", file=sys.stderr)
        return 1
    if args.reaction:
        records = [r for r in records if r.reaction == args.reaction]
    output = {"table": table, "csv": to_csv, "json": to_json}[args.format](records)
    write_output(output, args.output, f"{len(records)} ratings")
    return 0
