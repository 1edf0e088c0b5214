"""What is measured on one answer: cited sources against the expected ones, list completeness, page
furniture, and retrieval ranking (for `bench/eval.py`'s strictness sweep)."""

from __future__ import annotations

import math
import re
import time
from functools import cache
from pathlib import Path

from indexing.loaders import load
from rag.contract import DOC_MARKER, Answer, Answerer, Asker, Citation, Turn

FURNITURE = re.compile(
    r"\bpage \d+ of \d+\b|¶|^[ \t]*(?:[=~^*#-][ \t]*){3,}$|^[ \t]*\d{1,4}[ \t]*$|permalink to this",
    re.IGNORECASE | re.MULTILINE,
)
"""Page furniture and markup residue an answer must never quote (running headers are checked apart)."""
_ITEM = re.compile(r"^(?:\d{1,2}[.)]|[-*+])\s+(.*)$")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")


async def ask(
    answerer: Answerer, question: str, history: list[str], asker: Asker | None = None
) -> tuple[Answer, float]:
    """The answer to `question` for `asker` (None: anonymous) after each earlier turn was answered in
    order (as `ragbot ask --batch` does), and the milliseconds the last answer took."""
    turns: list[Turn] = []
    for text in history:
        earlier = await answerer.answer(turns, text, asker)
        turns += [
            Turn(role="user", content=text),
            Turn(
                role="assistant", content=earlier.content, citations=earlier.citations, intent=earlier.intent
            ),
        ]
    start = time.perf_counter()
    answer = await answerer.answer(turns, question, asker)
    return answer, (time.perf_counter() - start) * 1000


def cited(answer: Answer) -> list[Citation]:
    """The documents the content cites, in order of first use."""
    return [answer.citations[n - 1] for n in answer.cited_numbers() if 1 <= n <= len(answer.citations)]


def reference(citation: Citation) -> str:
    """A document as the demo's ground truth names it: its path, `#page=N` for a PDF page."""
    name = (citation.filepath or citation.url or citation.title or "?").replace("\\", "/")
    return f"{name}#page={citation.page}" if citation.page else name


def with_references(answer: Answer) -> str:
    """The content with each `[docN]` written as `[path#page=N]`, comparable with a truth's citations."""
    names = [reference(c) for c in answer.citations]
    return DOC_MARKER.sub(
        lambda m: f"[{names[int(m.group(1)) - 1]}]" if int(m.group(1)) <= len(names) else "", answer.content
    )


def matches(expected: str, citation: Citation) -> bool:
    """`expected` (`path` or `file.pdf#page=N`) names this document: the same path or a path ending in
    it (indexes may be built from another root), and the same page when both give one."""
    path, _, page = expected.replace("\\", "/").partition("#page=")
    name = (citation.filepath or citation.url or citation.title or "").replace("\\", "/")
    if not (name == path or name.endswith("/" + path.lstrip("/"))):
        return False
    return not (page and citation.page is not None and str(citation.page) != page)


def citations_matched(expected: list[str], answer: Answer) -> float | None:
    """Share of the expected sources the answer cites (None when nothing is expected)."""
    if not expected:
        return None
    documents = cited(answer)
    return sum(any(matches(e, c) for c in documents) for e in expected) / len(expected)


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
