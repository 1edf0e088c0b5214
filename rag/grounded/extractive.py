"""The extractive generator: an answer assembled from the retrieved documents' own sentences, no model.

Each document is cut into units (sentences of prose, list items, table rows) under their headings;
sentences that only introduce or point elsewhere ("This article covers...", "...see [link]") are left
out. Units are scored against the question: idf-weighted term overlap (a word found in the heading counts
a little less), averaged with the MiniLM cosine for the lexically best few when an embedder is given; a
unit lacking every code or number the question names (error 691) keeps little of its score; lower-ranked
documents weigh a little less. The answer takes:

* the best unit, with its whole section when the heading names the topic (covers much of the question
  or every code in it), else with the rest of its numbered list (half a procedure is no answer), or of
  the list it introduces ("Fix:");
* then further strong units (at least `RELATIVE_FLOOR` of the best score), skipping near-duplicates;
* at most `max_units` units and `max_chars` characters,

in reading order (document number, then position), each ending with its `[docN]` marker. List items stay
list items; prose stays sentences. Streaming yields one unit at a time.
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from rag.contract import REFUSAL, AnswerDelta, Citation, Turn
from rag.embedding import Embedder
from rag.grounded.text import content_words

RELATIVE_FLOOR = 0.75
"""A unit besides the best one must score at least this share of the best."""
SIBLING_FLOOR = 0.6
"""An entry of a bulleted list or table joins the best unit (its sibling) when it scores this share of it."""
HEADING_CREDIT = 0.6
"""A question word found in the unit's heading counts this much of a word found in the unit itself."""
SECTION_MATCH = 0.4
"""When the best unit's heading alone covers this share of the question, the section is the answer."""
_META = re.compile(
    r"^(?:(?:this|these) (?:article|page|guide|section|checklist|document)s?\b"
    r"|welcome\b|see |for (?:more|details)\b|managers:)",
    re.IGNORECASE,
)
"""Sentences that introduce rather than answer."""
_POINTER = re.compile(r"\bsee \[[^\]]*\](?:\([^)]*\))?", re.IGNORECASE)
_LINK_ONLY = re.compile(r"^\[[^\]]*\]\([^)]*\)[.:]?$")
POINTER_REST_WORDS = 6
"""A sentence with a "see [link]" pointer answers only if this many content words remain without it:
"For time off when unwell, see [Sick leave]" points elsewhere; "You get 25 days of annual leave per
year, plus public holidays (see [Public holidays])" answers."""
CODE_MISSING = 0.2
"""Score kept by a unit that lacks every code or number the question names (error 691, P60, 0x800...)."""
EMBEDDED_UNITS = 6
EMBEDDED_CHARS = 300
"""Only the lexically best units are embedded: a few short texts cost milliseconds, all of them would not."""
DUPLICATE_OVERLAP = 0.7
"""Units sharing at least this share of their words (Jaccard) say the same thing: keep the first."""
RANK_PENALTY = 0.06
"""Score taken off per document rank below the first: ties go to the better-ranked document."""
MAX_LIST_ITEMS = 8
EMBEDDING_CACHE = 4096

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*)$|^\d+(?:\.\d+)+\s+([A-Z][^.!?:]{0,60})$")
"""A Markdown heading, or a numbered section title as PDF text carries it ("3.4 Mileage")."""
_ITEM = re.compile(r"^\s*(?:([-*+•])|(\d{1,2})[.)])\s+(?:\[[ xX]\]\s+)?(.*)$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”)]?\s+(?=[A-Z0-9*\"“(\[])")
_WORD = re.compile(r"[^\W_]+")


@dataclass
class Unit:
    """One quotable piece of a document."""

    doc: int  # 1-based document number
    position: int
    text: str
    kind: str  # "sentence" | "item" | "row"
    block: int  # units of one list or table share a block number; prose units have their own
    numbered: bool = False
    heading: str = ""
    score: float = 0.0


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def terms(text: str) -> list[str]:
    """Content words, lower-cased and crudely stemmed (enough to match "printers" with "printer")."""
    return [_stem(w) for w in content_words(text)]


def points_elsewhere(text: str) -> bool:
    """An introduction, or a pointer to another page, rather than an answer."""
    if _META.match(text) or _LINK_ONLY.match(text):
        return True
    if _POINTER.search(text):
        return len(content_words(_POINTER.sub(" ", text))) < POINTER_REST_WORDS
    return False


def split_units(doc: int, content: str) -> list[Unit]:
    """The document's sentences, list items and table rows, in order; headings are dropped."""
    units: list[Unit] = []
    block = 0
    paragraph: list[str] = []
    previous_kind = ""
    heading = ""

    def flush() -> None:
        nonlocal block
        if not paragraph:
            return
        text = " ".join(paragraph)
        paragraph.clear()
        for sentence in _SENTENCE_END.split(text):
            block += 1
            units.append(Unit(doc, len(units), sentence.strip(), "sentence", block, heading=heading))

    for raw in content.splitlines():
        line = raw.strip()
        item = _ITEM.match(line)
        title = _HEADING.match(line)
        if _TABLE_RULE.match(line):  # the rule under a table's header row: the table goes on
            continue
        if not line or title:
            flush()
            previous_kind = ""
            heading = (title.group(1) or title.group(2)).strip() if title else heading
            continue
        if item:
            flush()
            if previous_kind != "item":
                block += 1
            units.append(
                Unit(doc, len(units), item.group(3).strip(), "item", block, bool(item.group(2)), heading)
            )
            previous_kind = "item"
        elif line.startswith("|") or " | " in line:
            flush()
            if previous_kind != "row":  # a table's first row names its columns: not an answer
                block += 1
                previous_kind = "row"
                continue
            cells = [c.strip() for c in line.strip("|").split("|") if c.strip()]
            text = cells[0] + (": " + ", ".join(cells[1:]) if cells[1:] else "") if cells else ""
            units.append(Unit(doc, len(units), text, "row", block, heading=heading))
        else:
            if previous_kind in ("item", "row") and not paragraph and raw[:1].isspace():
                units[-1].text += " " + line  # a wrapped list item
                continue
            paragraph.append(line)
            previous_kind = "text"
    flush()
    return [u for u in units if len(_WORD.findall(u.text)) >= 3]


class ExtractiveGenerator:
    """Answers with the documents' own best sentences, each cited; the embedded default (no model)."""

    name = "extractive"

    def __init__(self, embedder: Embedder | None = None, *, max_units: int = 7, max_chars: int = 900) -> None:
        self.embedder = embedder
        self.max_units = max_units
        self.max_chars = max_chars
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    async def stream(
        self, history: Sequence[Turn], question: str, documents: Sequence[Citation], queries: Sequence[str]
    ) -> AsyncIterator[AnswerDelta]:
        chosen = await self.choose(question, documents, queries)
        if not chosen:
            yield AnswerDelta(content=REFUSAL, finish_reason="stop")
            return
        for piece in render(chosen):
            yield AnswerDelta(content=piece)
        yield AnswerDelta(finish_reason="stop")

    async def choose(
        self, question: str, documents: Sequence[Citation], queries: Sequence[str]
    ) -> list[Unit]:
        """The units the answer is made of, in reading order."""
        units = [u for number, doc in enumerate(documents, start=1) for u in split_units(number, doc.content)]
        units = [u for u in units if not points_elsewhere(u.text)] or units
        if not units:
            return []
        asked = " ".join([question, *queries])
        heading_match = await self._score(units, asked)
        wanted_codes = {t for t in terms(asked) if any(c.isdigit() for c in t)}
        ranked = sorted(units, key=lambda u: u.score, reverse=True)
        best = ranked[0]
        picked: list[Unit] = []
        budget = self.max_chars

        def take(unit: Unit) -> bool:
            nonlocal budget
            if len(picked) >= self.max_units or (picked and len(unit.text) > budget):
                return False
            if not any(unit is p or _same(unit.text, p.text) for p in picked):
                picked.append(unit)
                budget -= len(unit.text)
            return True

        take(best)
        if _section_answers(best, heading_match, wanted_codes):
            group = [u for u in units if u.doc == best.doc and u.heading == best.heading]
        else:
            group = _steps_of(best, units, floor=SIBLING_FLOOR * best.score)
        expanded = bool(group)
        for unit in group:
            if not take(unit):
                break
        for unit in ranked[1:]:
            if unit.score < RELATIVE_FLOOR * best.score:
                break
            steps = [] if expanded else _steps_of(unit, units, floor=SIBLING_FLOOR * best.score)
            expanded = expanded or bool(steps)
            if not all(take(u) for u in steps or [unit]):
                break
        return sorted(picked, key=lambda u: (u.doc, u.position))

    async def _score(self, units: list[Unit], asked: str) -> dict[tuple[int, str], float]:
        """Scores every unit; returns how well each (document, heading) covers the question."""
        wanted = set(terms(asked))
        held = [set(terms(u.text)) for u in units]
        headed = [set(terms(u.heading)) for u in units]
        df = Counter(t for h in held for t in h)
        idf = {t: math.log((len(units) + 1) / (df[t] + 0.5)) for t in wanted}
        total = sum(idf.values()) or 1.0
        lexical = [
            sum(idf[t] * (1.0 if t in have else HEADING_CREDIT if t in heading else 0.0) for t in wanted)
            / total
            for have, heading in zip(held, headed, strict=True)
        ]
        for unit, value in zip(units, lexical, strict=True):
            unit.score = value
        if self.embedder is not None:
            shortlist = sorted(units, key=lambda u: u.score, reverse=True)[:EMBEDDED_UNITS]
            cosines = dict(zip(map(id, shortlist), await self._cosines(shortlist, asked), strict=True))
            for unit in units:  # outside the shortlist the cosine counts as 0: it ranked too low to matter
                unit.score = (unit.score + cosines.get(id(unit), 0.0)) / 2
        codes = {t for t in wanted if any(c.isdigit() for c in t)}
        for unit, have, heading in zip(units, held, headed, strict=True):
            unit.score -= RANK_PENALTY * (unit.doc - 1)
            if codes and not codes & (have | heading):
                unit.score *= CODE_MISSING
        return {
            (u.doc, u.heading): sum(idf[t] for t in wanted & heading) / total
            for u, heading in zip(units, headed, strict=True)
        }

    async def _cosines(self, units: list[Unit], asked: str) -> list[float]:
        if self.embedder is None:
            return [0.0] * len(units)
        texts = [u.text[:EMBEDDED_CHARS] for u in units]
        missing = list(dict.fromkeys(t for t in [asked, *texts] if t not in self._vectors))
        if missing:
            for text, vector in zip(missing, await self.embedder.embed(missing), strict=True):
                self._vectors[text] = vector
                if len(self._vectors) > EMBEDDING_CACHE:
                    self._vectors.popitem(last=False)
        query = self._vectors[asked]
        return [float(self._vectors[t] @ query) for t in texts]

    async def aclose(self) -> None:
        self._vectors.clear()


def _section_answers(best: Unit, heading_match: dict[tuple[int, str], float], codes: set[str]) -> bool:
    """The best unit's whole section is the answer when its heading names the topic: it covers much of
    the question, or every code the question names ("Error 809")."""
    if not best.heading:
        return False
    if heading_match.get((best.doc, best.heading), 0.0) >= SECTION_MATCH:
        return True
    return bool(codes) and codes <= set(terms(best.heading))


def _steps_of(anchor: Unit, units: list[Unit], *, floor: float) -> list[Unit]:
    """What the anchor needs beside it: all of a numbered list it is a step of, or of the list it
    introduces ("Fix:", "To do so:"); of a bulleted list or table, only the entries scoring at least
    `floor` (a checklist's other entries are not part of the answer)."""
    block = anchor.block
    if anchor.kind == "sentence":
        following = [u for u in units if u.doc == anchor.doc and u.position == anchor.position + 1]
        if not anchor.text.rstrip().endswith(":") or not following or following[0].kind == "sentence":
            return []
        block = following[0].block
    members = [u for u in units if u.doc == anchor.doc and u.block == block]
    whole = anchor.text.rstrip().endswith(":") or any(u.numbered for u in members)
    chosen = [u for u in members if whole or u is anchor or u.score >= floor]
    return chosen[:MAX_LIST_ITEMS] if len(chosen) > 1 else []


def _same(a: str, b: str) -> bool:
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not wa or not wb:
        return a.strip() == b.strip()
    return len(wa & wb) / len(wa | wb) >= DUPLICATE_OVERLAP


def _separator(previous: Unit | None, unit: Unit) -> str:
    if previous is None:
        return ""
    same_list = unit.kind != "sentence" and previous.doc == unit.doc and previous.block == unit.block
    if same_list:
        return "\n"
    if unit.kind != "sentence" or previous.kind != "sentence":
        return "\n\n"
    return " "


def render(units: Sequence[Unit]) -> list[str]:
    """One piece of answer text per unit (separator included), each ending with its `[docN]` marker.

    Items of one numbered list are renumbered 1, 2, ... in the order kept, so a skipped step leaves no gap.
    """
    pieces: list[str] = []
    previous: Unit | None = None
    number = 0
    units = [_alone_as_sentence(u, units) for u in units]
    for unit in units:
        same_list = previous is not None and previous.doc == unit.doc and previous.block == unit.block
        number = number + 1 if same_list else 1
        pieces.append(_separator(previous, unit) + _cited(unit, number))
        previous = unit
    return pieces


def _alone_as_sentence(unit: Unit, units: Sequence[Unit]) -> Unit:
    """A list item kept without its neighbours reads better as a sentence than as a one-item list."""
    if unit.kind == "sentence" or any(
        u is not unit and u.doc == unit.doc and u.block == unit.block for u in units
    ):
        return unit
    text = unit.text if unit.text[-1:] in ".!?:" else unit.text + "."
    return Unit(unit.doc, unit.position, text, "sentence", unit.block, heading=unit.heading, score=unit.score)


def _cited(unit: Unit, number: int) -> str:
    text = unit.text.strip()
    marker = f" [doc{unit.doc}]"
    body = text[:-1] + marker + text[-1] if text[-1:] in ".!?:" else text + marker
    if unit.kind == "sentence":
        return body
    return f"{number}. {body}" if unit.numbered else f"- {body}"
