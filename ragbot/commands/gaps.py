"""`ragbot gaps`: what the knowledge base is missing, from refusals, thumbs-down and comments."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import datetime
from pathlib import Path

from bot.feedback import FeedbackRecord, list_feedback
from bot.refusals import RefusalRecord, list_refusals
from bot.state import StateStore, StoreUnavailable
from rag.local.embedder import LocalEmbedder
from ragbot.commands._common import init, write_output
from ragbot.commands.feedback import server_store
from ragbot.evaluation.from_feedback import append_rows, feedback_rows
from ragbot.evaluation.questions import EvalFileError
from ragbot.gaps import (
    DEFAULT_SIMILARITY,
    MAX_ITEMS,
    find_gaps,
    gather,
    to_csv,
    to_json,
    to_markdown,
)

log = logging.getLogger("ragbot.gaps")

HELP = "list what users asked that the knowledge base could not answer well, grouped by meaning"
DESCRIPTION = f"""List the questions the bot refused ("not in the knowledge base"), the answers users
rated down and the comments they left, grouped by meaning with the local embedding model (nothing
is sent anywhere), largest group first, with other wordings, comments and the sources that were
shown: what to write or fix next. Read from the server's store (RAGBOT_STORAGE), also while it runs.

  ragbot gaps                                  a Markdown report
  ragbot gaps --since 2026-11-01 --format csv --out gaps.csv
  ragbot gaps --format json                    every group, as JSON
  ragbot gaps --similarity 0.7                 tighter groups (default {DEFAULT_SIMILARITY})
  ragbot gaps --export-eval more.jsonl         thumbs-down answers as evaluation rows

--export-eval writes each answer rated down as a line `ragbot eval` reads (question, the rated
answer and comment for reference, an empty `truth` to fill in with the right answer and its
sources as [file.pdf#page=N]); rows already in FILE are kept, new ones appended."""


def _date(text: str) -> str:
    """An ISO date or timestamp, as stored records compare with it (UTC, text order)."""
    try:
        datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01") from exc
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", type=_date, metavar="DATE", help="only from this date on (YYYY-MM-DD, UTC)"
    )
    parser.add_argument("--format", choices=("md", "csv", "json"), default="md", help="output format (md)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument(
        "--similarity",
        type=float,
        default=DEFAULT_SIMILARITY,
        metavar="0-1",
        help=f"how alike questions must be to share a group (cosine, default {DEFAULT_SIMILARITY})",
    )
    parser.add_argument(
        "--export-eval", type=Path, metavar="FILE", help="append thumbs-down answers to FILE as eval rows"
    )


async def _load(store: StateStore) -> tuple[list[RefusalRecord], list[FeedbackRecord]]:
    try:
        return await list_refusals(store), await list_feedback(store)
    finally:
        await store.aclose()


def run(args: argparse.Namespace) -> int:
    if not 0 < args.similarity <= 1:
        print("ragbot gaps: --similarity must be above 0 and at most 1", file=sys.stderr)
        return 2
    settings = init().bot
    store = server_store(settings)
    try:
        refusals, feedback = asyncio.run(_load(store)) if store is not None else ([], [])
    except StoreUnavailable as exc:
        print(f"ragbot gaps: cannot read {store and store.name}: {exc}", file=sys.stderr)
        return 1
    if args.export_eval:
        try:
            added = append_rows(args.export_eval, feedback_rows(feedback, args.since))
        except EvalFileError as exc:
            print(f"ragbot gaps: {exc}", file=sys.stderr)
            return 2
        print(f"added {added} thumbs-down answers to {args.export_eval}", file=sys.stderr)
        return 0
    items = gather(refusals, feedback, args.since)
    if len(items) == MAX_ITEMS:
        log.info("grouping the newest %d items only; --since picks an earlier period", MAX_ITEMS)
    if len(items) > 100:
        log.info("grouping %d questions with the local embedding model (about 100 a second)", len(items))
    gaps = asyncio.run(find_gaps(items, LocalEmbedder(), args.similarity))
    output = {"md": to_markdown, "csv": to_csv, "json": to_json}[args.format](gaps)
    write_output(output, args.out, f"{len(gaps)} gaps")
    return 0
