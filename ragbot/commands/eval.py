"""`ragbot eval`: answer a questions file with the active backend and score the answers."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import NamedTuple

from pydantic import ValidationError

from indexing.progress import Progress
from rag.factory import build_answerer
from rag.summary import summary_client
from ragbot.commands._common import AllSettings, init
from ragbot.commands.ask import not_ready_hint
from ragbot.evaluation.judge import Judge
from ragbot.evaluation.questions import EvalFileError, EvalQuestion, read_questions
from ragbot.evaluation.run import (
    ResultRow,
    Summary,
    compare,
    default_folder,
    evaluate,
    holds_results,
    metrics,
    read_results,
    started,
    table,
    write_results,
)

HELP = "answer a questions file and score the answers (citations, refusals, latency, judged quality)"
DESCRIPTION = """Answer every question of FILE with the active backend (see `ragbot config`) and score
the answers: citations_matched (share of the expected sources the answer cites), any_citation,
refusal accuracy (refused exactly the unanswerable questions), answer length and latency; with a
chat model configured (AZURE_OPENAI_* or RAGBOT_LLM_*), also groundedness and relevance, 1-5,
judged by that model (pass rate: 4 or more, and the mean). Examples:

  ragbot eval samples/helpdesk/questions.jsonl
  ragbot eval ground_truth.jsonl --out eval-results/baseline
  ragbot eval questions.jsonl --limit 20 --compare eval-results/baseline
  ragbot gaps --export-eval more.jsonl && ragbot eval more.jsonl

FILE holds one JSON object a line, either ragbot's questions format (id, question, history,
relevant, answerable) or the ground truth of Microsoft's azure-search-openai-demo
({"question": ..., "truth": ...} citing sources as [file.pdf#page=N]). Results go to a new
folder: rows.jsonl (one row per question) and summary.json; the summary is printed as a table.
--compare prints each metric beside another run's and the questions whose outcome changed."""


REMOTE_CONCURRENCY = 4
"""Answers in flight at once when a service answers: it waits on the network, not the CPU."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="questions, one JSON object a line")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="results folder (default eval-results/<UTC time>)"
    )
    parser.add_argument(
        "--compare", type=Path, metavar="OTHER_RESULTS", help="a results folder to compare this run with"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help=f"questions answered at once (default {REMOTE_CONCURRENCY}; 1 on the local backend, whose "
        "model already uses every core)",
    )
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N questions")
    parser.add_argument("--no-judge", action="store_true", help="skip groundedness and relevance")


class Answered(NamedTuple):
    rows: list[ResultRow]
    backend: str
    judge: str | None
    concurrency: int


async def _run(
    settings: AllSettings, questions: list[EvalQuestion], args: argparse.Namespace
) -> Answered | str:
    """The rows and how they were answered; or why the backend cannot answer."""
    answerer = build_answerer(settings.rag)
    client = None if args.no_judge else summary_client(settings.rag)
    judge = Judge(client) if client is not None else None
    try:
        reason = await answerer.ready()
        if reason:
            return f"the {answerer.name} backend is not ready: {not_ready_hint(settings, reason)}"
        concurrency = args.concurrency or (1 if answerer.name == "local" else REMOTE_CONCURRENCY)
        bar = Progress().bar("questions", "questions", len(questions))
        try:
            rows = await evaluate(answerer, questions, judge=judge, concurrency=concurrency, progress=bar)
        finally:
            bar.close()
        judged = client.default_deployment if client is not None else None
        return Answered(rows, answerer.name, judged, concurrency)
    finally:
        await answerer.aclose()
        if judge is not None:
            await judge.aclose()


def run(args: argparse.Namespace) -> int:
    if (args.concurrency is not None and args.concurrency < 1) or (args.limit is not None and args.limit < 1):
        print("ragbot eval: --concurrency and --limit must be at least 1", file=sys.stderr)
        return 2
    settings = init()
    try:
        questions = read_questions(args.file)[: args.limit]
        other = read_results(args.compare) if args.compare else None
    except (EvalFileError, OSError, ValidationError, ValueError) as exc:
        print(f"ragbot eval: {exc}", file=sys.stderr)
        return 2
    folder = args.out or default_folder()
    if holds_results(folder):
        print(f"ragbot eval: {folder} already holds results; give another --out", file=sys.stderr)
        return 2
    start, began = time.perf_counter(), started()
    outcome = asyncio.run(_run(settings, questions, args))
    if isinstance(outcome, str):
        print(f"ragbot eval: {outcome}", file=sys.stderr)
        return 2  # no index, an unreadable one, refused credentials: set-up to fix, as `ragbot ask`
    summary = Summary(
        file=str(args.file),
        backend=outcome.backend,
        judge=outcome.judge,
        questions=len(outcome.rows),
        concurrency=outcome.concurrency,
        started_at=began,
        seconds=round(time.perf_counter() - start, 2),
        metrics=metrics(outcome.rows),
    )
    try:
        write_results(folder, outcome.rows, summary)
    except FileExistsError as exc:
        print(f"ragbot eval: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(table(summary))
    if other is not None:
        sys.stdout.write("\n" + compare(summary, outcome.rows, *other))
    print(f"results in {folder}", file=sys.stderr)
    return 0
