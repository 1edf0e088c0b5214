"""A retrieved passage cut into the pieces an extractive answer quotes: sentences, list items, table
rows and code blocks, each under its heading.

The cut follows the structure Markdown, HTML, PDF and reStructuredText give their text: a numbered
list's steps stay steps (a line directly under an item continues it; deeper items belong to the step
above them), a fenced, indented (`::`) or doctest (`>>>`) block stays one code block, headings and
numbered section titles ("3.4 Mileage", or "3. Per diem" standing alone in a PDF) are headings, not
answers, and a short unpunctuated PDF line ("Band Examples Rate") is not glued to the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.grounded.text import content_words
from rag.markdown import FENCE, HEADING_MARK, closes

_HEADING = re.compile(HEADING_MARK + r"(.*?)(?:\s+#+)?\s*$|^\d+(?:\.\d+)+\.?\s+([A-Z][^.!?:]{0,60})$")
"""A Markdown heading, or a numbered section title as PDF text carries it ("3.4 Mileage")."""
_ITEM = re.compile(r"^(\s*)(?:([-*+•])|(\d{1,2})[.)])\s+(?:\[[ xX]\]\s+)?(.*)$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_DIRECTIVE = re.compile(r"^\s*\.\.\s+(?:(code-block|code|sourcecode|highlight)::.*|[\w-]+::.*|.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”)]?\s+(?=[A-Z0-9*\"“(\[])")
_WORD = re.compile(r"[^\W_]+")
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
SHORT_LINE = 45
"""A paragraph line shorter than this, with no sentence end, followed by a capitalised line, ends there:
PDF tables and title lines come out as such short lines, wrapped prose lines are longer."""
TITLE_WORDS = 10
"""A numbered line standing alone, unpunctuated and at most this long, is a section title ("3. Per diem")."""
MIN_WORDS = 3
"""Shorter sentences and rows say too little to be an answer on their own (list steps are kept)."""


@dataclass
class Unit:
    """One quotable piece of a document."""

    doc: int  # 1-based document number
    position: int
    text: str
    kind: str  # "sentence" | "item" | "row" | "code"
    block: int  # units of one list or table share a block number; others have their own
    numbered: bool = False
    heading: str = ""
    score: float = 0.0
    coverage: float = 0.0  # the share of the question's terms it holds (idf-weighted), before any cosine
    language: str = ""  # of a code block
    cite: int = 0  # the document the marker names, when not `doc` (a list continued in the next chunk)

    @property
    def source(self) -> int:
        return self.cite or self.doc

    @property
    def introduces(self) -> bool:
        """A sentence ending with a colon leads into the list or code right after it."""
        return self.kind == "sentence" and self.text.rstrip().endswith(":")


def points_elsewhere(text: str) -> bool:
    """An introduction, or a pointer to another page, rather than an answer."""
    if _META.match(text) or _LINK_ONLY.match(text):
        return True
    if _POINTER.search(text):
        return len(content_words(_POINTER.sub(" ", text))) < POINTER_REST_WORDS
    return False


class _Reader:
    """The state of one pass over a passage's lines."""

    def __init__(self, doc: int, title: str) -> None:
        self.doc = doc
        self.title = " ".join(title.split()).casefold()
        self.units: list[Unit] = []
        self.block = 0
        self.heading = ""
        self.paragraph: list[str] = []
        self.previous = ""  # kind of the previous line: "", "text", "item", "row"
        self.item_indent = 0

    def add(
        self, text: str, kind: str, *, numbered: bool = False, new_block: bool = True, language: str = ""
    ) -> None:
        if new_block:
            self.block += 1
        self.units.append(
            Unit(self.doc, len(self.units), text, kind, self.block, numbered, self.heading, language=language)
        )

    def flush(self) -> None:
        if not self.paragraph:
            return
        text = " ".join(self.paragraph)
        self.paragraph.clear()
        for sentence in _SENTENCE_END.split(text):
            if sentence.strip():
                self.add(sentence.strip(), "sentence")

    def text_line(self, line: str) -> None:
        last = self.paragraph[-1] if self.paragraph else ""
        unfinished = last and len(last) < SHORT_LINE and not last.endswith((".", "!", "?", ":", ";", ","))
        if unfinished and (line[:1].isupper() or line[:1].isdigit()):
            self.flush()
        self.paragraph.append(line)
        self.previous = "text"


def split_units(doc: int, content: str, *, title: str = "") -> list[Unit]:
    """The passage's sentences, list items, table rows and code blocks, in order; headings are dropped."""
    reader = _Reader(doc, title)
    lines = content.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        line = raw.strip()
        i += 1
        fence = FENCE.match(raw)
        if fence:
            reader.flush()
            body: list[str] = []
            while i < len(lines) and not closes(fence.group(1), lines[i]):
                body.append(lines[i])
                i += 1
            i += 1
            _code(reader, body, fence.group(2))
            continue
        if line.startswith(">>> ") and reader.previous != "item":
            reader.flush()
            body = [raw]
            while i < len(lines) and lines[i].strip():
                body.append(lines[i])
                i += 1
            _code(reader, body, "pycon")
            continue
        directive = _DIRECTIVE.match(raw) if line.startswith("..") else None
        if directive:
            reader.flush()
            body, i = _indented_block(lines, i)
            if directive.group(1):  # `.. code-block:: lang`: the indented block under it is code
                _code(reader, body, line.partition("::")[2].strip())
            else:  # `.. note::` and the like: their text is text
                for text in _dedent(body):
                    if text.strip():
                        reader.text_line(text.strip())
                    else:
                        reader.flush()
                reader.flush()
            continue
        heading = _HEADING.match(line) or _section_title(line, lines, i, reader)
        if heading:
            reader.flush()
            reader.previous = ""
            reader.heading = _heading_text(heading, line)
            continue
        if not line:
            reader.flush()
            if reader.units and reader.units[-1].text.endswith("::") and reader.previous == "text":
                reader.units[-1].text = _literal_lead(reader.units[-1].text)
                body, i = _indented_block(lines, i)
                _code(reader, body, "")
            elif reader.previous != "item" or not _continues_list(lines, i):
                reader.previous = ""
            continue
        if _TABLE_RULE.match(line):  # the rule under a table's header row: the table goes on
            continue
        if raw.startswith(("    ", "\t")) and reader.previous == "" and not reader.paragraph:
            body, i = _indented_block(lines, i - 1)
            _code(reader, body, "")
            continue
        item = _ITEM.match(raw)
        if item:
            _item(reader, item)
        elif line.startswith("|") or " | " in line:
            reader.flush()
            if reader.previous != "row":  # a table's first row names its columns: not an answer
                reader.block += 1
                reader.previous = "row"
                continue
            cells = [c.strip() for c in line.strip("|").split("|") if c.strip()]
            text = cells[0] + (": " + ", ".join(cells[1:]) if cells[1:] else "") if cells else ""
            reader.add(text, "row", new_block=False)
        elif reader.previous == "item" and not reader.paragraph:
            reader.units[-1].text += " " + line  # a wrapped list item (lazy continuation)
        else:
            reader.text_line(line)
    reader.flush()
    return [u for u in reader.units if _quotable(u, reader)]


def _item(reader: _Reader, item: re.Match[str]) -> None:
    reader.flush()
    indent = len(item.group(1).expandtabs(4))
    text = item.group(4).strip()
    if reader.previous == "item" and indent > reader.item_indent and reader.units:
        marker = item.group(2) or f"{item.group(3)}."
        reader.units[-1].text += f"\n   {marker} {text}"  # a sub-item belongs to the step above it
        return
    new_block = reader.previous != "item"
    if new_block:
        reader.item_indent = indent
    reader.add(text, "item", numbered=bool(item.group(3)), new_block=new_block)
    reader.previous = "item"


def _code(reader: _Reader, body: list[str], language: str) -> None:
    text = "\n".join(_dedent(body)).strip("\n")
    if text.strip():
        reader.add(text, "code", language=language)
    reader.previous = ""


def _indented_block(lines: list[str], i: int) -> tuple[list[str], int]:
    """The indented lines from line `i` on (blank lines inside included), and the line after them."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    body: list[str] = []
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
        if not body and lines[i].lstrip().startswith(":"):  # directive options (`:linenos:`)
            i += 1
            continue
        body.append(lines[i])
        i += 1
    return body, i


def _dedent(body: list[str]) -> list[str]:
    indents = [len(line) - len(line.lstrip()) for line in body if line.strip()]
    cut = min(indents, default=0)
    return [line[cut:].rstrip() for line in body]


def _literal_lead(text: str) -> str:
    """reST's "Example::" reads "Example:"; a lone " ::" reads as nothing."""
    return text[:-3] + ":" if text.endswith(" ::") else text[:-1]


def _continues_list(lines: list[str], i: int) -> bool:
    """A blank line inside a list (loose list): the next non-blank line is another item, or an indented
    paragraph of the item above."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i < len(lines) and (bool(_ITEM.match(lines[i])) or lines[i].startswith(("  ", "\t")))


def _section_title(line: str, lines: list[str], i: int, reader: _Reader) -> re.Match[str] | None:
    """A numbered line standing alone ("3. Per diem and travel allowances" in a PDF) is a section title:
    unpunctuated, short, with no numbered step before or after it."""
    item = _ITEM.match(line)
    after_step = reader.previous == "item" and reader.units and reader.units[-1].numbered
    if not item or not item.group(3) or after_step:
        return None
    text = item.group(4).strip()
    if text.endswith((".", "!", "?", ":", ";", ",", ")")) or len(text.split()) > TITLE_WORDS:
        return None
    following = lines[i].strip() if i < len(lines) else ""
    next_item = _ITEM.match(following)
    if not following or (next_item and next_item.group(3)):
        return None
    return item


def _heading_text(title: re.Match[str], line: str) -> str:
    groups = [g for g in title.groups() if g]
    text = groups[-1] if groups else line
    return text.strip()


def _quotable(unit: Unit, reader: _Reader) -> bool:
    """Not a heading in disguise (the title again), and long enough unless it is a step or code."""
    flat = " ".join(unit.text.split()).rstrip(".:").casefold()
    if flat and (flat == reader.title or flat == unit.heading.casefold()):
        return False
    if unit.kind in ("code", "item"):
        siblings = sum(u.block == unit.block for u in reader.units)
        return unit.kind == "code" or siblings > 1 or len(_WORD.findall(unit.text)) >= MIN_WORDS
    return len(_WORD.findall(unit.text)) >= MIN_WORDS
