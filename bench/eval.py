"""`make eval`: the sample questions through the local backend, one row per strictness (1-5).

Columns (documents are judged at article level: a chunk is relevant when its file is in the question's
`relevant` list):

- recall@5: of the answerable questions' relevant articles, the share among the (at most 5) documents
  the answer gets, after strictness and top_n;
- nDCG@10: the ranking of the documents that pass strictness, first 10 distinct articles;
- cit.prec: of all documents the answers cite with `[docN]`, the share that are relevant (citations in
  answers to unanswerable questions count as irrelevant);
- refusal: share of the unanswerable questions answered with On Your Data's refusal;
- answered: share of the answerable questions not refused;
- complete: procedure completeness, for questions whose relevant passage is a list (`procedure`: the
  sections holding it, as `path#Heading`): the share of the list's steps the answer quotes whole;
- furniture: answers carrying page furniture or markup residue (a PDF's running header or footer,
  "Page 2 of 3", a lone page number, Sphinx's "¶", reST "=====" underlines), out of all answers;
- p50/p95: latency of one `answer()` (intent, retrieval, strictness, extractive answer), in ms.

Follow-ups are asked after their history, each earlier turn answered first, as `ragbot ask --batch` does.
Usage: `python -m bench.eval [--questions FILE] [--strictness 1 3 5]` with `RAGBOT_DATA_DIR` pointing at
the index (`make eval` builds it from samples/helpdesk).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import statistics
import sys
import time
from functools import cache
from pathlib import Path

from pydantic import BaseModel, Field

from indexing.loaders import load
from rag.contract import DOC_MARKER, Answer, Turn
from rag.grounded.answerer import GroundedAnswerer
from rag.grounded.build import build_grounded
from rag.settings import load_settings

QUESTIONS = Path("samples/helpdesk/questions.jsonl")
TARGETS = {"recall@5": 0.93, "refusal": 0.9, "complete": 0.9}
FURNITURE = re.compile(
    r"\bpage \d+ of \d+\b|¶|^[ \t]*(?:[=~^*#-][ \t]*){3,}$|^[ \t]*\d{1,4}[ \t]*$|permalink to this",
    re.IGNORECASE | re.MULTILINE,
)
"""Page furniture and markup residue an answer must never quote (running headers are checked apart)."""
_ITEM = re.compile(r"^(?:\d{1,2}[.)]|[-*+])\s+(.*)$")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")


class Question(BaseModel):
    id: str
    question: str
    history: list[str] = Field(default_factory=list)
    relevant: list[str] = Field(default_factory=list)
    answerable: bool = True
    procedure: list[str] = Field(
        default_factory=list, description="`path#Heading` of each section whose list answers the question"
    )


class Row(BaseModel):
    strictness: int
    recall: float
    ndcg: float
    citation_precision: float
    refusal: float
    answered: float
    complete: float
    furniture: int
    answers: int
    p50_ms: float
    p95_ms: float


def article(filepath: str | None, relevant: list[str]) -> str:
    """The question's relevant path this file is (paths may be indexed relative to another root)."""
    path = (filepath or "").replace("\\", "/")
    for wanted in relevant:
        if path == wanted or path.endswith("/" + wanted):
            return wanted
    return path


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    distinct = list(dict.fromkeys(ranked))[:10]
    dcg = sum(1 / math.log2(i + 2) for i, name in enumerate(distinct) if name in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    return dcg / ideal if ideal else 0.0


def words(text: str) -> str:
    """Text reduced to its lower-cased words: Markdown emphasis, links, markers and numbering do not count."""
    text = DOC_MARKER.sub(" ", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text))
    return " ".join(re.findall(r"[^\W_]+", text.lower()))


def steps(root: Path, reference: str) -> list[str]:
    """The top-level entries of the first list under the heading `reference` names (`path#Heading`) in a
    Markdown source, continuation lines included, sub-lists left out."""
    path, _, heading = reference.partition("#")
    found: list[str] = []
    inside = False
    for line in (root / path).read_text(encoding="utf-8").splitlines():
        title = _HEADING.match(line)
        if title:
            if found:
                break
            inside = title.group(1) == heading
            continue
        item = _ITEM.match(line)
        if not inside:
            continue
        if item:
            found.append(item.group(1))
        elif found and line.strip() and line[:1].isspace() and not _ITEM.match(line.strip()):
            found[-1] += " " + line.strip()
        elif found and line.strip() and not line[:1].isspace():
            break
    if not found:
        raise ValueError(f"{reference}: no list under that heading")
    return [words(step) for step in found]


def completeness(answer: Answer, procedure: list[list[str]]) -> float:
    """Share of the procedures' steps found whole in the answer."""
    said = words(answer.content)
    wanted = [step for entries in procedure for step in entries]
    return sum(step in said for step in wanted) / len(wanted)


@cache
def running_lines(root: Path) -> frozenset[str]:
    """Lines printed on more than one page of a PDF under `root`: its running headers and footers."""
    lines: set[str] = set()
    for pdf in root.rglob("*.pdf"):
        seen: dict[str, int] = {}
        for section in load(pdf.read_bytes(), pdf).sections:
            for line in {" ".join(raw.split()) for raw in section.text.splitlines()}:
                if len(line) >= 12:
                    seen[line] = seen.get(line, 0) + 1
        lines |= {line for line, pages in seen.items() if pages > 1}
    return frozenset(lines)


def has_furniture(answer: Answer, root: Path) -> bool:
    text = DOC_MARKER.sub("", answer.content)
    flat = " ".join(text.split())
    return bool(FURNITURE.search(text)) or any(line in flat for line in running_lines(root))


async def ask(answerer: GroundedAnswerer, question: Question) -> tuple[Answer, float]:
    history: list[Turn] = []
    for text in question.history:
        earlier = await answerer.answer(history, text)
        history += [
            Turn(role="user", content=text),
            Turn(
                role="assistant", content=earlier.content, citations=earlier.citations, intent=earlier.intent
            ),
        ]
    start = time.perf_counter()
    answer = await answerer.answer(history, question.question)
    return answer, (time.perf_counter() - start) * 1000


async def evaluate(answerer: GroundedAnswerer, questions: list[Question], strictness: int, root: Path) -> Row:
    answerer.options = answerer.options.model_copy(
        update={"strictness": strictness, "include_all_retrieved": True}
    )
    await answerer.generator.aclose()  # empty its embedding cache: every row pays the same
    recalls, ndcgs, latencies, complete = [], [], [], []
    cited = cited_relevant = refused_unanswerable = answered = furnished = 0
    for question in questions:
        answer, elapsed = await ask(answerer, question)
        latencies.append(elapsed)
        furnished += has_furniture(answer, root)
        if question.procedure:
            complete.append(completeness(answer, [steps(root, p) for p in question.procedure]))
        relevant = set(question.relevant)
        for number in answer.cited_numbers():
            if 1 <= number <= len(answer.citations):
                cited += 1
                cited_relevant += (
                    article(answer.citations[number - 1].filepath, question.relevant) in relevant
                )
        if not question.answerable:
            refused_unanswerable += answer.refused
            continue
        answered += not answer.refused
        kept = {article(c.filepath, question.relevant) for c in answer.citations}
        recalls.append(len(kept & relevant) / len(relevant))
        passing = [d for d in answer.all_retrieved_documents if d.filter_reason != "score"]
        ndcgs.append(ndcg_at_10([article(d.filepath, question.relevant) for d in passing], relevant))
    unanswerable = sum(not q.answerable for q in questions)
    quantiles = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    return Row(
        strictness=strictness,
        recall=statistics.mean(recalls) if recalls else 0.0,
        ndcg=statistics.mean(ndcgs) if ndcgs else 0.0,
        citation_precision=cited_relevant / cited if cited else 0.0,
        refusal=refused_unanswerable / unanswerable if unanswerable else 0.0,
        answered=answered / len(recalls) if recalls else 0.0,
        complete=statistics.mean(complete) if complete else 0.0,
        furniture=furnished,
        answers=len(questions),
        p50_ms=statistics.median(latencies),
        p95_ms=quantiles[18],
    )


def table(rows: list[Row], default: int) -> str:
    lines = [
        "| strictness | recall@5 | nDCG@10 | cit.prec | refusal | answered | complete | furniture "
        "| p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = f"{r.strictness} (default)" if r.strictness == default else str(r.strictness)
        lines.append(
            f"| {mark} | {r.recall:.3f} | {r.ndcg:.3f} | {r.citation_precision:.3f} | {r.refusal:.3f} "
            f"| {r.answered:.3f} | {r.complete:.3f} | {r.furniture}/{r.answers} "
            f"| {r.p50_ms:.0f} | {r.p95_ms:.0f} |"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    settings = load_settings()
    answerer = build_grounded(settings, local_only=True)
    assert isinstance(answerer, GroundedAnswerer)
    try:
        reason = await answerer.ready()
        if reason:
            print(f"eval: the local backend is not ready: {reason}", file=sys.stderr)
            return 1
        lines = args.questions.read_text(encoding="utf-8").splitlines()
        questions = [Question.model_validate_json(line) for line in lines if line.strip()]
        await ask(answerer, questions[0])  # load the model and the vectors outside the timings
        root = args.questions.resolve().parent
        rows = [await evaluate(answerer, questions, s, root) for s in args.strictness]
    finally:
        await answerer.aclose()
    default = settings.search.strictness
    answerable = sum(q.answerable for q in questions)
    top_n = settings.search.top_k
    procedures = sum(bool(q.procedure) for q in questions)
    print(
        f"{len(questions)} questions ({answerable} answerable, {procedures} answered by a list), "
        f"local backend, top_n={top_n}"
    )
    print(table(rows, default))
    chosen = next((r for r in rows if r.strictness == default), None)
    if chosen is not None:
        checks = {"recall@5": chosen.recall, "refusal": chosen.refusal, "complete": chosen.complete}
        verdict = ", ".join(
            f"{name} {value:.3f} {'>=' if value >= TARGETS[name] else '<'} {TARGETS[name]}"
            for name, value in checks.items()
        )
        furniture = "none" if chosen.furniture == 0 else f"{chosen.furniture} (target: none)"
        print(f"targets at strictness {default}: {verdict}, answers with furniture {furniture}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.eval", description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--strictness", type=int, nargs="+", default=[1, 2, 3, 4, 5], choices=range(1, 6))
    sys.exit(asyncio.run(main(parser.parse_args())))
