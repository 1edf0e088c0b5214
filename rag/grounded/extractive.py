"""The extractive generator: an answer assembled from the retrieved documents' own text, no model.

Each document is cleaned of page furniture and markup residue (`residue.py`) and cut into units
(sentences, list items, table rows, code blocks) under their headings (`units.py`). Units are scored
against the question: idf-weighted term overlap (a word found in the heading or the document's title
counts a little less), averaged with the MiniLM cosine for the lexically best few when an embedder is
given; a unit lacking every code or number the question names (error 691) keeps little of its score;
lower-ranked documents weigh a little less, and so do documents about another variant (platform, product,
audience) than the one the question names ("on Windows" leaves the macOS article aside).

The answer is one of:

* a procedure: when the question asks how to do something, or its best unit is a step, the best
  numbered list (or list introduced by "...:") comes whole and in order, with the sentence leading into
  it; when equally good procedures come from documents that differ by a variant the question does not
  name (their titles differ by "Windows 11" / "macOS"), each comes under its own label ("On Windows 11:");
* otherwise the best unit, with its whole section when the heading names the topic, then further strong
  units (at least `RELATIVE_FLOOR` of the best score), skipping near-duplicates.

A unit that leads into a code block brings the block (and the block its lead). Everything is bounded by
`max_units` and `max_chars`, cut only between units: a procedure too long for the cap ends with a pointer
to its source rather than half a step. A question in several parts ("How do I reset my password and how
many days of leave do I get?") is answered part by part, each from its own query, and a part nothing
answers is named. Units come in reading order (document, then position), each ending with its `[docN]`
marker; streaming yields one unit at a time.
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.contract import REFUSAL, AnswerDelta, Citation, Turn
from rag.embedding import Embedder
from rag.grounded.intent import question_parts
from rag.grounded.residue import clean, repeated_lines
from rag.grounded.text import VARIANT_NAMES, content_words
from rag.grounded.units import Unit, points_elsewhere, split_units

RELATIVE_FLOOR = 0.75
"""A unit besides the best one must score at least this share of the best."""
SIBLING_FLOOR = 0.6
"""An entry of a bulleted list or table joins the best unit (its sibling) when it scores this share of it."""
HEADING_CREDIT = 0.6
"""A question word found in the unit's heading or document title counts this much of one in the unit."""
SECTION_MATCH = 0.4
"""When the best unit's heading alone covers this share of the question, the section is the answer."""
SECTION_UNITS = 12
"""A section longer than this is not quoted whole."""
PROCEDURE_FLOOR = 0.65
"""A procedure answers a how-to question when its best step scores this share of the best unit."""
VARIANT_FLOOR = 0.8
"""Another variant's procedure joins the answer when it scores this share of the chosen one."""
OTHER_VARIANT = 0.3
"""Score kept by units of a document about another variant than the one the question names."""
PART_FLOOR = 0.5
"""A part of a multi-part question is answered only by a unit holding this share of its terms."""
PROCEDURE_HEADING = 0.2
"""Weight of a procedure's own heading naming the question's terms ("Connect" for "connect to the VPN")."""
MIN_CODE = 3
"""Shorter numbers are versions, counts or days rather than codes."""
CODE_MISSING = 0.2
"""Score kept by a unit that lacks every code or number the question names (error 691, P60, 0x800...)."""
EMBEDDED_UNITS = 6
EMBEDDED_CHARS = 300
"""Only the lexically best units are embedded: a few short texts cost milliseconds, all of them would not."""
DUPLICATE_OVERLAP = 0.7
"""Units sharing at least this share of their words (Jaccard) say the same thing: keep the first."""
RANK_PENALTY = 0.06
"""Score taken off per document rank below the first: ties go to the better-ranked document."""
MAX_LEAD = 2
"""Sentences between a heading and its procedure that come with it ("You must be in the office.")."""
EMBEDDING_CACHE = 4096

_PROCEDURAL = re.compile(
    r"\bhow (?:do|can|should|would|to|must)\b|\bhow i\b|\bsteps?\b|\binstructions?\b|\bprocedure\b"
    r"|\bwhat (?:do|should|must) (?:i|we) do\b|^\s*(?:please\s+)?(?:set ?up|install|connect|reset|add|book"
    r"|submit|request|configure|enable|change|register|report)\b",
    re.IGNORECASE,
)
_OPTION = re.compile(r"^(?:option|method|alternative|way)\s*\d+\b", re.IGNORECASE)
"""Headings of alternative procedures in one article, offered side by side."""
_PREPOSITIONS = frozenset("on in for with using at from under via".split())  # noqa: SIM905
_ALIASES = {name: sorted(names)[0] for names in VARIANT_NAMES for name in names}
"""Every name of a platform scores as one ("macOS" in a title answers "Mac" in the question)."""
_WORD = re.compile(r"[^\W_]+")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def terms(text: str) -> list[str]:
    """Content words, lower-cased and crudely stemmed (enough to match "printers" with "printer")."""
    return [_ALIASES.get(w, _stem(w)) for w in content_words(text)]


def codes_in(words: Iterable[str]) -> set[str]:
    """The codes and numbers among `words` (error 691, P60, 0x800...); a version ("Windows 11") is not one."""
    return {w for w in words if len(w) >= MIN_CODE and any(c.isdigit() for c in w)}


@dataclass
class Group:
    """Units answering one part of the question, or one variant, under an optional label."""

    units: list[Unit]
    label: str = ""
    note: str = ""  # said instead of units (a part nothing answers) or after them (steps left out)
    note_doc: int = 0


@dataclass
class _Scoring:
    """The question's terms and their weights among the units at hand."""

    wanted: set[str]
    idf: dict[str, float]
    total: float
    titles: dict[int, str]
    variants: dict[int, str]
    asked: str
    ranks: dict[int, int]
    heading_match: dict[tuple[int, str], float] = field(default_factory=dict)

    def lexical(self, have: set[str], heading: set[str]) -> float:
        """The idf-weighted share of the question's terms found (in the heading or title: a little less)."""
        found = (
            self.idf[t] * (1.0 if t in have else HEADING_CREDIT if t in heading else 0.0) for t in self.wanted
        )
        return sum(found) / self.total

    def adjust(self, score: float, doc: int, held: set[str]) -> float:
        """Less for a lower-ranked document, one lacking the codes asked for, or another variant's."""
        score -= RANK_PENALTY * self.ranks.get(doc, doc - 1)
        codes = codes_in(self.wanted)
        if codes and not codes & held:
            score *= CODE_MISSING
        variant = self.variants.get(doc)
        named = any(_named(self.asked, label) for label in self.variants.values())
        if named and variant and not _named(self.asked, variant):
            score *= OTHER_VARIANT
        return score


@dataclass
class _Passages:
    """The documents at hand as units, with what scoring needs about each document."""

    units: list[Unit]
    titles: dict[int, str]
    variants: dict[int, str] = field(default_factory=dict)  # doc -> label ("On Windows 11")
    ranks: dict[int, int] = field(default_factory=dict)  # doc -> rank of its file (chunks of one file tie)


class ExtractiveGenerator:
    """Answers with the documents' own best sentences, steps and code, each cited; no model."""

    name = "extractive"

    def __init__(
        self, embedder: Embedder | None = None, *, max_units: int = 16, max_chars: int = 1600
    ) -> None:
        self.embedder = embedder
        self.max_units = max_units
        self.max_chars = max_chars
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    async def stream(
        self, history: Sequence[Turn], question: str, documents: Sequence[Citation], queries: Sequence[str]
    ) -> AsyncIterator[AnswerDelta]:
        groups = await self.answer_groups(question, documents, queries)
        if not any(g.units for g in groups):
            yield AnswerDelta(content=REFUSAL, finish_reason="stop")
            return
        for piece in render_groups(groups):
            yield AnswerDelta(content=piece)
        yield AnswerDelta(finish_reason="stop")

    async def answer_groups(
        self, question: str, documents: Sequence[Citation], queries: Sequence[str]
    ) -> list[Group]:
        """The answer's groups: one per part of a multi-part question, else one per variant, else one."""
        parts = question_parts(question)
        if len(parts) < 2 or len(queries) != len(parts):
            return await self.choose_groups(" ".join([question, *queries]), documents)
        groups: list[Group] = []
        used: list[Unit] = []
        for part, query in zip(parts, queries, strict=True):
            found = await self.choose_groups(
                " ".join([part, query]), documents, floor=PART_FLOOR, exclude=used
            )
            label = part[:1].upper() + part[1:] + ("" if part.endswith("?") else "?")
            if not found:
                groups.append(Group([], label=label, note="The documents found say nothing about this."))
                continue
            found[0].label = f"{label} {found[0].label}".strip() if found[0].label else label
            for group in found:
                used.extend(group.units)
            groups.extend(found)
        return groups if any(g.units for g in groups) else []

    async def choose_groups(
        self,
        asked: str,
        documents: Sequence[Citation],
        *,
        floor: float = 0.0,
        exclude: Sequence[Unit] = (),
    ) -> list[Group]:
        passages = passages_of(documents)
        units = [u for u in passages.units if not any(_same_unit(u, x) for x in exclude)]
        units = [u for u in units if not points_elsewhere(u.text)] or units
        if not units:
            return []
        scoring = await self._score(units, asked, passages)
        ranked = sorted(units, key=lambda u: u.score, reverse=True)
        best = ranked[0]
        if max(u.coverage for u in units) < floor:
            return []
        budget = _Budget(self.max_units, self.max_chars)
        procedures = await self._procedures_ranked(units, asked, scoring)
        if procedures:
            score, steps = procedures[0]
            lead = _lead_of(steps, units)
            asks_how = bool(_PROCEDURAL.search(asked))
            if best in steps or best in lead or (asks_how and score >= PROCEDURE_FLOOR * best.score):
                return self._procedures(procedures, units, passages, asked, budget)
        heading_match = scoring.heading_match
        picked = _Picked(budget)
        picked.take(best)
        codes = codes_in(terms(asked))
        section = [u for u in units if u.doc == best.doc and u.heading == best.heading]
        if _section_answers(best, heading_match, codes) and len(section) <= SECTION_UNITS:
            group = section
        else:
            group = _steps_of(best, units, floor=SIBLING_FLOOR * best.score)
        expanded = bool(group)
        for unit in group:
            if not picked.take(unit):
                break
        for unit in ranked[1:]:
            if unit.score < RELATIVE_FLOOR * best.score:
                break
            steps = [] if expanded else _steps_of(unit, units, floor=SIBLING_FLOOR * best.score)
            expanded = expanded or bool(steps)
            if not all(picked.take(u) for u in steps or [unit]):
                break
        return [Group(_with_code(picked.units, units))]

    def _procedures(
        self,
        procedures: list[tuple[float, list[Unit]]],
        units: list[Unit],
        passages: _Passages,
        asked: str,
        budget: _Budget,
    ) -> list[Group]:
        """The best procedure, with the best of each other variant when the question names none."""
        score, best = procedures[0]
        chosen = [best]
        labels = {id(best): passages.variants.get(best[0].doc, "")}
        if _OPTION.match(best[0].heading):  # "Option 1: ..." / "Option 2: ...": the reader picks
            labels[id(best)] = best[0].heading
            for other_score, steps in procedures[1:]:
                heading = steps[0].heading
                same_file = passages.ranks[steps[0].doc] == passages.ranks[best[0].doc]
                alternative = same_file and _OPTION.match(heading)
                if alternative and other_score >= VARIANT_FLOOR * score and heading not in labels.values():
                    labels[id(steps)] = heading
                    chosen.append(steps)
            chosen.sort(key=lambda steps: steps[0].heading)
        elif labels[id(best)] and not _names_variant(asked, passages):
            for other_score, steps in procedures[1:]:
                other = passages.variants.get(steps[0].doc, "")
                if other and other not in labels.values() and other_score >= VARIANT_FLOOR * score:
                    labels[id(steps)] = other
                    chosen.append(steps)
        if len(chosen) > 1:
            chosen.sort(
                key=lambda steps: (
                    (steps[0].doc, steps[0].position) if labels[id(best)] == best[0].heading else 0
                )
            )
        groups: list[Group] = []
        for steps in chosen:
            whole = _with_code(_with_lead(steps, units), units)
            kept = budget.fit(whole)
            group = Group(kept, label=labels.get(id(steps), "") if len(chosen) > 1 else "")
            if len(kept) < len(whole):
                left = sum(u.kind == "item" for u in whole[len(kept) :])
                group.note = f"The remaining {left} steps are in the source." if left else ""
                group.note_doc = steps[-1].source
            if kept:
                groups.append(group)
        return groups

    async def _procedures_ranked(
        self, units: list[Unit], asked: str, scoring: _Scoring
    ) -> list[tuple[float, list[Unit]]]:
        """Every procedure (a numbered list, or a list a "...:" sentence introduces) with its score, best
        first. A procedure is scored as a whole: its heading names its topic as much as its steps do."""
        lists: dict[tuple[int, int], list[Unit]] = {}
        for unit in units:
            if unit.kind == "item":
                lists.setdefault((unit.doc, unit.block), []).append(unit)
        found: list[tuple[list[Unit], set[str], set[str], str]] = []
        for items in lists.values():
            lead = _lead_of(items, units)
            if len(items) < 2 or not (items[0].numbered or (lead and lead[-1].introduces)):
                continue
            parts = [*lead, *items]
            have = {t for u in parts for t in terms(u.text)} | set(terms(items[0].heading))
            heading = set(terms(scoring.titles.get(items[0].doc, "")))
            title = scoring.titles.get(items[0].doc, "")
            text = f"{title} - {items[0].heading}: " + " ".join(u.text for u in parts)
            found.append((items, have, heading, text[:EMBEDDED_CHARS]))
        if not found:
            return []
        cosines = await self._texts_cosines([text for *_, text in found], asked)
        ranked = []
        for (items, have, heading, _), cosine in zip(found, cosines, strict=True):
            lexical = scoring.lexical(have, heading)
            value = (lexical + cosine) / 2 if self.embedder is not None else lexical
            value += PROCEDURE_HEADING * scoring.lexical(set(terms(items[0].heading)), set())
            ranked.append((scoring.adjust(value, items[0].doc, have), items))
        return sorted(ranked, key=lambda r: r[0], reverse=True)

    async def _score(self, units: list[Unit], asked: str, passages: _Passages) -> _Scoring:
        """Scores every unit; returns the scoring, to score procedures and sections the same way."""
        wanted = set(terms(asked))
        held = [set(terms(u.text)) for u in units]
        own = [set(terms(u.heading)) for u in units]  # a title naming every code in the article says little
        headed = [h | set(terms(passages.titles.get(u.doc, ""))) for u, h in zip(units, own, strict=True)]
        df = Counter(t for h in held for t in h)
        idf = {t: math.log((len(units) + 1) / (df[t] + 0.5)) for t in wanted}
        total = sum(idf.values()) or 1.0
        scoring = _Scoring(wanted, idf, total, passages.titles, passages.variants, asked, passages.ranks)
        for unit, have, heading, section in zip(units, held, headed, own, strict=True):
            # a code in the unit's own heading ("## Error 809") is what the unit is about
            unit.score = unit.coverage = scoring.lexical(have | codes_in(section), heading)
        if self.embedder is not None:  # the shortlist is read after the penalties, or they would fill it
            adjusted = {
                id(u): scoring.adjust(u.score, u.doc, have | section)
                for u, have, section in zip(units, held, own, strict=True)
            }
            shortlist = sorted(units, key=lambda u: adjusted[id(u)], reverse=True)[:EMBEDDED_UNITS]
            cosines = dict(zip(map(id, shortlist), await self._cosines(shortlist, asked), strict=True))
            for unit in units:  # outside the shortlist the cosine counts as 0: it ranked too low to matter
                unit.score = (unit.score + cosines.get(id(unit), 0.0)) / 2
        for unit, have, section in zip(units, held, own, strict=True):
            unit.score = scoring.adjust(unit.score, unit.doc, have | section)
        scoring.heading_match = {
            (u.doc, u.heading): sum(idf[t] for t in wanted & set(terms(u.heading))) / total for u in units
        }
        return scoring

    async def _texts_cosines(self, texts: list[str], asked: str) -> list[float]:
        if self.embedder is None:
            return [0.0] * len(texts)
        missing = list(dict.fromkeys(t for t in [asked, *texts] if t not in self._vectors))
        if missing:
            for text, vector in zip(missing, await self.embedder.embed(missing), strict=True):
                self._vectors[text] = vector
                if len(self._vectors) > EMBEDDING_CACHE:
                    self._vectors.popitem(last=False)
        query = self._vectors[asked]
        return [float(self._vectors[t] @ query) for t in texts]

    async def _cosines(self, units: list[Unit], asked: str) -> list[float]:
        return await self._texts_cosines([u.text[:EMBEDDED_CHARS] for u in units], asked)

    async def aclose(self) -> None:
        self._vectors.clear()


def passages_of(documents: Sequence[Citation]) -> _Passages:
    """Every document cleaned and cut into units; documents whose titles differ by a variant labelled."""
    drop = repeated_lines((d.filepath or d.url or d.title or "", d.page, d.content) for d in documents)
    units: list[Unit] = []
    titles: dict[int, str] = {}
    files: dict[str, int] = {}
    ranks: dict[int, int] = {}
    for number, doc in enumerate(documents, start=1):
        titles[number] = doc.title or ""
        ranks[number] = files.setdefault(doc.filepath or doc.url or str(number), len(files))
        text = clean(_without_fragment(doc), title=doc.title, paged=doc.page is not None, drop=drop)
        found = split_units(number, text, title=doc.title or "")
        before = _chunk_before(doc, documents)
        if before is not None:
            found = _continued(found, units, before + 1, documents[before].content)
        units.extend(found)
    return _Passages(units, titles, variant_labels(titles), ranks)


_BLOCK_START = re.compile(r"^(?:[#>|`*+-]\s|#|\d{1,2}[.)]\s|[A-Z0-9\"“'(\[*_`<])")


def _without_fragment(doc: Citation) -> str:
    """A chunk that starts inside a sentence (the overlap with the chunk before it, cut mid-way) loses
    that first broken line."""
    if doc.chunk_id in (None, "", "0") or _BLOCK_START.match(doc.content) or doc.content.startswith("**"):
        return doc.content
    return doc.content.partition("\n")[2]


def _chunk_before(doc: Citation, documents: Sequence[Citation]) -> int | None:
    """The index of the chunk right before `doc` in the same file and page, when it was retrieved too."""
    if not doc.chunk_id or not doc.chunk_id.isdigit() or doc.chunk_id == "0":
        return None
    wanted = str(int(doc.chunk_id) - 1)
    for index, other in enumerate(documents):
        if other.filepath == doc.filepath and other.chunk_id == wanted and other.page == doc.page:
            return index
    return None


def _continued(found: list[Unit], units: list[Unit], previous: int, previous_text: str) -> list[Unit]:
    """A chunk's units, read as the continuation of the chunk before it: what the two share (the overlap)
    goes, and what comes before the chunk's first heading joins the previous chunk's last section, so a
    list cut between two chunks stays one list (cited from the chunk each step is in)."""
    flat = " ".join(previous_text.split())
    found = [u for u in found if " ".join(u.text.split()) not in flat]
    earlier = [u for u in units if u.doc == previous]
    if not earlier:
        return found
    last = max(earlier, key=lambda u: u.position)
    position, block = last.position, last.block
    for unit in found:
        if unit.heading:
            break
        same_list = unit.kind == "item" and last.kind == "item" and block == last.block
        position += 1
        unit.cite, unit.doc, unit.position, unit.heading = unit.doc, previous, position, last.heading
        unit.block = block if same_list else block + 1
        block = unit.block
    return found


def variant_labels(titles: dict[int, str]) -> dict[int, str]:
    """ "On Windows 11" / "On macOS" for documents whose titles differ only there
    ("Connect to Contoso VPN on Windows 11" / "... on macOS"); documents with no such twin get none."""
    labels: dict[int, str] = {}
    words = {doc: title.split() for doc, title in titles.items() if title}
    for a, first in words.items():
        for b, second in words.items():
            if a >= b or first == second:
                continue
            pair = _differing(first, second)
            if pair:
                labels.setdefault(a, pair[0])
                labels.setdefault(b, pair[1])
    return labels


def _differing(first: list[str], second: list[str]) -> tuple[str, str] | None:
    start = 0
    while start < min(len(first), len(second)) and first[start].lower() == second[start].lower():
        start += 1
    end = 0
    while (
        end < min(len(first), len(second)) - start
        and first[len(first) - 1 - end].lower() == second[len(second) - 1 - end].lower()
    ):
        end += 1
    a, b = first[start : len(first) - end], second[start : len(second) - end]
    if start + end < 2 or not a or not b or len(a) > 4 or len(b) > 4:
        return None
    lead = first[start - 1] if start and first[start - 1].lower() in _PREPOSITIONS else ""
    first_label, second_label = (" ".join([lead, *words]).strip() for words in (a, b))
    return first_label[:1].upper() + first_label[1:], second_label[:1].upper() + second_label[1:]


def _names_variant(asked: str, passages: _Passages) -> bool:
    return any(_named(asked, label) for label in passages.variants.values())


def _named(asked: str, label: str) -> bool:
    said = set(terms(asked))
    return bool({t for t in terms(label) if not t.isdigit()} & said)


def _lead_of(items: list[Unit], units: list[Unit]) -> list[Unit]:
    """The sentences between the list's heading and its first step (at most `MAX_LEAD`)."""
    first = items[0]
    before = [
        u for u in units if u.doc == first.doc and u.position < first.position and u.heading == first.heading
    ]
    lead: list[Unit] = []
    for unit in reversed(before):
        if unit.kind != "sentence" or len(lead) == MAX_LEAD or points_elsewhere(unit.text):
            break
        lead.insert(0, unit)
    return lead


def _with_lead(items: list[Unit], units: list[Unit]) -> list[Unit]:
    return [*_lead_of(items, units), *items]


def _with_code(picked: list[Unit], units: list[Unit]) -> list[Unit]:
    """Picked units with the code block each lead-in introduces, and the lead-in of each code block."""
    result: list[Unit] = []
    by_place = {(u.doc, u.position): u for u in units}
    for unit in sorted(picked, key=lambda u: (u.doc, u.position)):
        before = by_place.get((unit.doc, unit.position - 1))
        if unit.kind == "code" and before is not None and before.introduces and before not in result:
            result.append(before)
        if unit not in result:
            result.append(unit)
        after = by_place.get((unit.doc, unit.position + 1))
        if unit.introduces and after is not None and after.kind == "code" and after not in picked:
            result.append(after)
    return result


class _Budget:
    """What is left of `max_units` and `max_chars` for the whole answer."""

    def __init__(self, units: int, chars: int) -> None:
        self.units = units
        self.chars = chars
        self.spent = False

    def fit(self, units: list[Unit]) -> list[Unit]:
        """The longest prefix of `units` that fits (at least one unit on an empty answer)."""
        kept: list[Unit] = []
        for unit in units:
            if self.units <= 0 or (self.spent and len(unit.text) > self.chars):
                break
            kept.append(unit)
            self.units -= 1
            self.chars -= len(unit.text)
            self.spent = True
        return kept


class _Picked:
    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.units: list[Unit] = []

    def take(self, unit: Unit) -> bool:
        """Adds the unit unless it repeats one; False when the budget is spent."""
        if any(unit is p or _same(unit.text, p.text) for p in self.units):
            return True
        if not self.budget.fit([unit]):
            return False
        self.units.append(unit)
        return True


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
        if not anchor.introduces or not following or following[0].kind not in ("item", "row"):
            return []
        block = following[0].block
    members = [u for u in units if u.doc == anchor.doc and u.block == block]
    whole = anchor.introduces or any(u.numbered for u in members)
    chosen = [u for u in members if whole or u is anchor or u.score >= floor]
    if anchor.kind == "sentence" and anchor not in chosen:
        chosen.insert(0, anchor)
    return chosen if len(chosen) > 1 else []


def _same(a: str, b: str) -> bool:
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not wa or not wb:
        return a.strip() == b.strip()
    return len(wa & wb) / len(wa | wb) >= DUPLICATE_OVERLAP


def _same_unit(a: Unit, b: Unit) -> bool:
    return (a.doc, a.position) == (b.doc, b.position) or _same(a.text, b.text)


def _separator(previous: Unit | None, unit: Unit) -> str:
    if previous is None:
        return ""
    same_list = unit.kind in ("item", "row") and previous.doc == unit.doc and previous.block == unit.block
    if same_list:
        return "\n"
    if unit.kind != "sentence" or previous.kind != "sentence":
        return "\n\n"
    return " "


def render_groups(groups: Sequence[Group]) -> list[str]:
    """The pieces of every group: a group's label (bold, on its own line) comes with its first piece.

    Items of one numbered list are renumbered 1, 2, ... in the order kept, so a skipped step leaves no gap.
    A code block comes with the unit before it, so every piece carries a marker.
    """
    pieces: list[str] = []
    for group in groups:
        units = sorted(group.units, key=lambda u: (u.doc, u.position))
        units = [_alone_as_sentence(u, units) for u in units]
        label = f"**{group.label}**\n" if group.label else ""
        start = "\n\n" if pieces else ""
        if not units:
            pieces.append(f"{start}{label}{group.note}")
            continue
        previous: Unit | None = None
        number = 0
        for unit in units:
            same_list = previous is not None and previous.doc == unit.doc and previous.block == unit.block
            number = number + 1 if same_list else 1
            text = _separator(previous, unit) + _cited(unit, number)
            if unit.kind == "code" and previous is not None:
                pieces[-1] += text
            elif unit.kind == "code":
                pieces.append(f"{start}{label}From [doc{unit.source}]:\n\n{text}")
            else:
                pieces.append((start + label if previous is None else "") + text)
            previous = unit
        if group.note:
            pieces.append(f"\n\n{group.note[:-1]} [doc{group.note_doc}].")
    return pieces


def _alone_as_sentence(unit: Unit, units: Sequence[Unit]) -> Unit:
    """A list item kept without its neighbours reads better as a sentence than as a one-item list."""
    if unit.kind != "item" or any(
        u is not unit and u.doc == unit.doc and u.block == unit.block for u in units
    ):
        return unit
    text = unit.text if unit.text[-1:] in ".!?:" else unit.text + "."
    return Unit(unit.doc, unit.position, text, "sentence", unit.block, heading=unit.heading, score=unit.score)


def _cited(unit: Unit, number: int) -> str:
    marker = f" [doc{unit.source}]"
    if unit.kind == "code":
        return f"```{unit.language}\n{unit.text}\n```"
    text, newline, rest = unit.text.strip().partition("\n")  # sub-items stay under the cited step
    body = text[:-1] + marker + text[-1] if text[-1:] in ".!?:" else text + marker
    body += newline + rest
    if unit.kind == "sentence":
        return body
    return f"{number}. {body}" if unit.numbered else f"- {body}"
