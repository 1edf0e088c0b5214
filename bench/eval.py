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
- leaks: documents the answers cited or retrieved that their asker may not see (a question's `groups`,
  none: anonymous; a document's own front matter says who may see it), out of all such documents; must
  be 0;
- furniture: answers carrying page furniture or markup residue (a PDF's running header or footer,
  "Page 2 of 3", a lone page number, Sphinx's "¶", reST "=====" underlines), out of all answers;
- p50/p95: latency of one `answer()` (intent, retrieval, strictness, extractive answer), in ms.

Follow-ups are asked after their history, each earlier turn answered first, as `ragbot ask --batch` does.
The question model and the measures are `ragbot.evaluation`'s (`ragbot eval` scores any backend at its
configured strictness; this sweep is the local backend's retrieval at every strictness).
Usage: `python -m bench.eval [--questions FILE] [--strictness 1 3 5]` with `RAGBOT_DATA_DIR` pointing at
the index (`make eval` builds it from samples/helpdesk).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from indexing.loaders import load
from rag.contract import Answer, Asker
from rag.grounded.answerer import GroundedAnswerer
from rag.grounded.build import build_grounded
from rag.settings import load_settings
from ragbot.evaluation.metrics import article, ask, completeness, has_furniture, ndcg_at_10, steps
from ragbot.evaluation.questions import EvalQuestion, read_questions

QUESTIONS = Path("samples/helpdesk/questions.jsonl")
TARGETS = {"recall@5": 0.93, "refusal": 0.9, "complete": 0.9}


class Row(BaseModel):
    strictness: int
    recall: float
    ndcg: float
    citation_precision: float
    refusal: float
    answered: float
    complete: float
    leaks: int
    documents: int
    furniture: int
    answers: int
    p50_ms: float
    p95_ms: float


@cache
def access(root: Path, filepath: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The groups and users a sample document names (a path indexed from another root is found by its
    tail)."""
    parts = Path(filepath.replace("\\", "/")).parts
    for start in range(len(parts)):
        path = root.joinpath(*parts[start:])
        if path.is_file():
            document = load(path.read_bytes(), path)
            return tuple(document.group_ids), tuple(document.user_ids)
    return (), ()


def leaked(answer: Answer, asker: Asker, root: Path) -> tuple[int, int]:
    """(documents the asker may not see, documents) among those the answer cited or retrieved."""
    shown = [c.filepath or "" for c in [*answer.citations, *answer.all_retrieved_documents]]
    return sum(not asker.may_see(*access(root, path)) for path in shown), len(shown)


async def evaluate(
    answerer: GroundedAnswerer, questions: list[EvalQuestion], strictness: int, root: Path
) -> Row:
    answerer.options = answerer.options.model_copy(
        update={"strictness": strictness, "include_all_retrieved": True}
    )
    await answerer.generator.aclose()  # empty its embedding cache: every row pays the same
    recalls, ndcgs, latencies, complete = [], [], [], []
    cited = cited_relevant = refused_unanswerable = answered = furnished = leaks = shown = 0
    for question in questions:
        answer, elapsed = await ask(answerer, question.question, question.history, question.asker)
        latencies.append(elapsed)
        furnished += has_furniture(answer, root)
        hidden, documents = leaked(answer, question.asker, root)
        leaks, shown = leaks + hidden, shown + documents
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
        leaks=leaks,
        documents=shown,
        furniture=furnished,
        answers=len(questions),
        p50_ms=statistics.median(latencies),
        p95_ms=quantiles[18],
    )


def table(rows: list[Row], default: int) -> str:
    lines = [
        "| strictness | recall@5 | nDCG@10 | cit.prec | refusal | answered | complete | leaks | furniture "
        "| p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = f"{r.strictness} (default)" if r.strictness == default else str(r.strictness)
        lines.append(
            f"| {mark} | {r.recall:.3f} | {r.ndcg:.3f} | {r.citation_precision:.3f} | {r.refusal:.3f} "
            f"| {r.answered:.3f} | {r.complete:.3f} | {r.leaks}/{r.documents} | {r.furniture}/{r.answers} "
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
        questions = read_questions(args.questions)
        first = questions[0]
        await ask(
            answerer, first.question, first.history
        )  # load the model and the vectors outside the timings
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
        leaks = "none" if chosen.leaks == 0 else f"{chosen.leaks} (target: none)"
        print(
            f"targets at strictness {default}: {verdict}, answers with furniture {furniture}, "
            f"documents shown to someone who may not see them {leaks}"
        )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.eval", description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--strictness", type=int, nargs="+", default=[1, 2, 3, 4, 5], choices=range(1, 6))
    sys.exit(asyncio.run(main(parser.parse_args())))
