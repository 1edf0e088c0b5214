"""One evaluation run: every question answered (a bounded number at a time), scored, summarised, and
written to a results folder (`rows.jsonl`, `summary.json`) that a later run can be compared with.

Metric names follow the azure-search-openai-demo evaluator's summaries where they exist
(`citations_matched.rate`, `any_citation.rate`, `groundedness.pass_rate`, ...).
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from indexing.progress import Bar
from rag.contract import Answerer
from rag.errors import RagError
from ragbot.evaluation.judge import PASSING, Judge
from ragbot.evaluation.metrics import ask, citations_matched, cited, reference, with_references
from ragbot.evaluation.questions import LINE_ID, EvalQuestion

ROWS = "rows.jsonl"
SUMMARY = "summary.json"
LOWER_IS_BETTER = ("latency.", "errors")
NEUTRAL = ("answer_length.", "questions")
COUNTS = ("questions", "errors")


class ResultRow(BaseModel):
    id: str
    question: str
    truth: str = ""
    answer: str = Field(default="", description="the content with each [docN] written as [path#page=N]")
    refused: bool = False
    answerable: bool = True
    refusal_correct: bool = False
    expected_sources: list[str] = Field(default_factory=list)
    cited_sources: list[str] = Field(default_factory=list)
    citations_matched: float | None = None
    any_citation: bool = False
    answer_length: int = 0
    latency_ms: float | None = None
    groundedness: int | None = None
    relevance: int | None = None
    error: str | None = Field(default=None, description="why no answer came (the row's metrics are left out)")
    judge_problem: str | None = None


class Summary(BaseModel):
    file: str
    backend: str
    judge: str | None = None
    questions: int
    concurrency: int
    started_at: str
    seconds: float
    metrics: dict[str, float | None]


async def answer_row(answerer: Answerer, question: EvalQuestion, judge: Judge | None) -> ResultRow:
    row = ResultRow(
        id=question.id,
        question=question.question,
        truth=question.truth,
        answerable=question.answerable,
        expected_sources=question.expected_sources,
    )
    try:
        answer, elapsed = await ask(answerer, question.question, question.history, question.asker)
    except RagError as exc:
        return row.model_copy(update={"error": f"{type(exc).__name__}: {exc}"})
    documents = cited(answer)
    text = with_references(answer)
    row = row.model_copy(
        update={
            "answer": text,
            "refused": answer.refused,
            "refusal_correct": answer.refused != question.answerable,
            "cited_sources": list(dict.fromkeys(reference(c) for c in documents)),
            "citations_matched": citations_matched(row.expected_sources, answer),
            "any_citation": bool(documents),
            "answer_length": len(text),
            "latency_ms": round(elapsed, 1),
        }
    )
    if judge is None or answer.refused:
        return row
    sources = documents or answer.citations
    grounded, relevant = await asyncio.gather(
        judge.score("groundedness", question.question, text, sources),
        judge.score("relevance", question.question, text, sources),
    )
    problems = "; ".join(v.problem for v in (grounded, relevant) if v.problem)
    return row.model_copy(
        update={
            "groundedness": grounded.score,
            "relevance": relevant.score,
            "judge_problem": problems or None,
        }
    )


async def evaluate(
    answerer: Answerer,
    questions: Sequence[EvalQuestion],
    *,
    judge: Judge | None = None,
    concurrency: int = 4,
    progress: Bar | None = None,
) -> list[ResultRow]:
    """Rows in the questions' order; at most `concurrency` questions are in flight (a fixed pool of
    workers, so a long file costs no more memory than a short one)."""
    rows: list[ResultRow | None] = [None] * len(questions)
    pending = iter(enumerate(questions))

    async def worker() -> None:
        for index, question in pending:
            rows[index] = await answer_row(answerer, question, judge)
            if progress is not None:
                progress.update(1)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(questions))))))
    return [row for row in rows if row is not None]


def _mean(values: Iterable[float]) -> float | None:
    found = list(values)
    return round(statistics.fmean(found), 4) if found else None


def _percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def metrics(rows: Sequence[ResultRow]) -> dict[str, float | None]:
    """The run's figures. Rows whose answer failed count only under `errors`; citation and length
    figures are over answers that are not refusals; judged figures over the rows the judge scored."""
    done = [r for r in rows if r.error is None]
    answers = [r for r in done if not r.refused]
    latencies = [r.latency_ms for r in done if r.latency_ms is not None]
    found: dict[str, float | None] = {
        "questions": len(rows),
        "errors": sum(r.error is not None for r in rows),
        "citations_matched.rate": _mean(r.citations_matched for r in done if r.citations_matched is not None),
        "any_citation.rate": _mean(float(r.any_citation) for r in answers),
        "refusal.accuracy": _mean(float(r.refusal_correct) for r in done),
        "refusal.unanswerable_refused": _mean(float(r.refused) for r in done if not r.answerable),
        "refusal.answerable_answered": _mean(float(not r.refused) for r in done if r.answerable),
        "answer_length.mean": _mean(r.answer_length for r in answers),
        "latency.mean_ms": _mean(latencies),
        "latency.p50_ms": _percentile(latencies, 0.5),
        "latency.p95_ms": _percentile(latencies, 0.95),
    }
    for metric in ("groundedness", "relevance"):
        scores = [s for r in done if (s := getattr(r, metric)) is not None]
        found[f"{metric}.pass_rate"] = _mean(float(s >= PASSING) for s in scores)
        found[f"{metric}.mean_rating"] = _mean(scores)
    return found


def holds_results(folder: Path) -> bool:
    return (folder / SUMMARY).exists() or (folder / ROWS).exists()


def write_results(folder: Path, rows: Sequence[ResultRow], summary: Summary) -> None:
    """`rows.jsonl` and `summary.json` in a new folder; an existing run is never overwritten."""
    if holds_results(folder):
        raise FileExistsError(f"{folder} already holds results; give another --out")
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(row.model_dump_json() + "\n" for row in rows)
    (folder / ROWS).write_text(lines, encoding="utf-8")
    (folder / SUMMARY).write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")


def read_results(path: Path) -> tuple[Summary, list[ResultRow]]:
    """A results folder (or its summary.json) as written by `write_results`."""
    folder = path.parent if path.name == SUMMARY else path
    summary = Summary.model_validate_json((folder / SUMMARY).read_text(encoding="utf-8"))
    rows_file = folder / ROWS
    lines = rows_file.read_text(encoding="utf-8").splitlines() if rows_file.exists() else []
    return summary, [ResultRow.model_validate_json(line) for line in lines if line.strip()]


def _value(name: str, value: float | None, sign: str = "") -> str:
    """Counts whole, milliseconds and characters to a tenth, rates and ratings to three places."""
    if value is None:
        return "-"
    if name in COUNTS:
        return f"{value:{sign}.0f}"
    return f"{value:{sign}.1f}" if name.startswith(NEUTRAL + LOWER_IS_BETTER) else f"{value:{sign}.3f}"


def table(summary: Summary) -> str:
    judge = summary.judge or "none (no chat model configured, or --no-judge)"
    lines = [
        f"{summary.questions} questions from {summary.file}, {summary.backend} backend, judge: {judge}, "
        f"{summary.seconds:.1f} s at concurrency {summary.concurrency}",
        "",
        f"{'metric':<32} value",
    ]
    lines += [f"{name:<32} {_value(name, value)}" for name, value in summary.metrics.items()]
    return "\n".join(lines) + "\n"


def _verdict(name: str, change: float) -> str:
    if change == 0 or name.startswith(NEUTRAL):
        return ""
    better = change < 0 if name.startswith(LOWER_IS_BETTER) else change > 0
    return "better" if better else "worse"


def compare(
    summary: Summary,
    rows: Sequence[ResultRow],
    other: Summary,
    other_rows: Sequence[ResultRow],
    limit: int = 20,
) -> str:
    """Each metric side by side with its change, then the questions whose outcome changed."""
    lines = [
        f"compared with {other.file} on the {other.backend} backend ({other.started_at}):",
        "",
        f"{'metric':<32} {'this':>9} {'other':>9} {'change':>9}",
    ]
    for name in dict.fromkeys([*summary.metrics, *other.metrics]):
        mine, theirs = summary.metrics.get(name), other.metrics.get(name)
        if mine is None or theirs is None:
            change, verdict = "-", ""
        else:
            delta = mine - theirs
            change, verdict = _value(name, delta, "+"), _verdict(name, delta)
        lines.append(
            f"{name:<32} {_value(name, mine):>9} {_value(name, theirs):>9} {change:>9} {verdict}".rstrip()
        )
    before = {_key(r): r for r in other_rows}
    changed = []
    for row in rows:
        old = before.get(_key(row))
        if old is None:
            continue
        notes = [
            f"{field} {_show(getattr(old, field))} -> {_show(getattr(row, field))}"
            for field in ("error", "refused", "citations_matched", "groundedness", "relevance")
            if getattr(old, field) != getattr(row, field)
        ]
        if notes:
            changed.append(f"  {row.id}: {'; '.join(notes)}  ({row.question[:60]})")
    lines += ["", f"{len(changed)} questions changed" + (":" if changed else "")]
    lines += changed[:limit]
    if len(changed) > limit:
        lines.append(f"  ... and {len(changed) - limit} more (rows.jsonl has them all)")
    asked = {_key(r) for r in rows}
    only_here, only_there = len(asked - before.keys()), len(before.keys() - asked)
    if only_here or only_there:
        lines.append(f"{only_here} questions only in this run, {only_there} only in the other")
    return "\n".join(lines) + "\n"


def _key(row: ResultRow) -> str:
    """Which row of the other run is the same question: by id, or by its text when the file gave no
    id (`line-N` shifts when a line is added above)."""
    return row.question if row.id.startswith(LINE_ID) else row.id


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)


def started() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_folder(root: Path = Path("eval-results")) -> Path:
    return root / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
