"""What a retrieved passage carries that is not its content: page furniture and markup residue.

Loaders keep what the source printed, so an indexed PDF page still holds its running header and its
footer ("https://kb.example/policy    Page 2 of 3"), Sphinx HTML its "¶" permalinks, reStructuredText its
"=====" underlines, and wikis their link-only "see also" lines. :func:`clean` strips them at answer
time, so indexes built before any loader fix answer cleanly too; underlined titles become Markdown
headings, which the extractive generator reads as headings rather than quoting them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from rag.markdown import FENCE, closes

_PERMALINK = re.compile(
    r"[ \t]*(?:¶|🔗|\u00b6)|\(?permalink to this (?:headline|heading|definition|section)\)?", re.I
)
_PAGE_OF = re.compile(r"[ \t]*[-–(]?[ \t]*\bpage[ \t]+\d{1,4}[ \t]*(?:of|/)[ \t]*\d{1,4}\b[ \t]*[-–)]?", re.I)
_PAGE_AT_END = re.compile(r"[ \t]*[-–(]?[ \t]*\bpage[ \t]+\d{1,4}[ \t]*[-–)]?[ \t]*$", re.I)
_LONE_PAGE = re.compile(r"^[ \t]*[-–(]?[ \t]*\d{1,4}(?:[ \t]*(?:of|/)[ \t]*\d{1,4})?[ \t]*[-–)]?[ \t]*$")
_URL_ONLY = re.compile(r"^[ \t]*<?https?://\S+>?[ \t]*$")
_LINKS_ONLY = re.compile(r"^[ \t]*(?:[-*+][ \t]+)?(?:\[[^\]]*\]\([^)]*\)[ \t]*[|·,]?[ \t]*)+[.:]?[ \t]*$")
_UNDERLINE = re.compile(r"^[ \t]*([=\-~^\"'`#*+_])\1{2,}[ \t]*$")
_ITEM_OR_ROW = re.compile(r"^[ \t]*(?:[-*+•][ \t]|\d{1,2}[.)][ \t]|\|)")
_SENTENCE_END = re.compile(r"[.!?:;,]$")
RUNNING_HEADER_EXTRA = 40
"""A line holding the document's title with at most this many more characters (and no sentence end) is
a running header ("Contoso Ltd. - Travel and Expense Policy"), not content."""


def repeated_lines(pages: Iterable[tuple[str, int | None, str]]) -> set[str]:
    """Lines printed on more than one page of the same file: running headers and footers.

    `pages` holds (file, page, text) of the passages at hand; passages without a page never count.
    """
    seen: Counter[tuple[str, str]] = Counter()
    for filepath, _, text in {(f, p, t) for f, p, t in pages if p is not None}:
        for line in {_flat(raw) for raw in text.splitlines()}:
            if line:
                seen[filepath, line] += 1
    return {line for (_, line), pages_with_it in seen.items() if pages_with_it > 1}


def clean(
    content: str, *, title: str | None = None, paged: bool = False, drop: set[str] | None = None
) -> str:
    """`content` without furniture and residue; code blocks are left exactly as they are.

    `paged`: the passage is a printed page (PDF), whose lines naming the document's `title` are its
    running header. `drop`: lines known to repeat on several pages (see :func:`repeated_lines`).
    """
    kept: list[str] = []
    fence: str | None = None  # of the code block the line is in
    wanted_title = _flat(title or "").casefold()
    for raw in content.splitlines():
        if fence:  # code stays as is, up to the fence that closes it (as the unit splitter reads it)
            kept.append(raw)
            fence = None if closes(fence, raw) else fence
            continue
        opening = FENCE.match(raw)
        if opening or (raw.startswith(("    ", "\t")) and raw.strip()):  # a fence, or indented code
            fence = opening.group(1) if opening else None
            kept.append(raw)
            continue
        line = _PERMALINK.sub("", raw).rstrip()
        if drop and _flat(line) in drop:
            continue
        if _UNDERLINE.match(line):
            _underline(kept)
            continue
        if _PAGE_OF.search(line) or (paged and _PAGE_AT_END.search(line)):
            line = _PAGE_AT_END.sub("", _PAGE_OF.sub("", line)) if paged else _PAGE_OF.sub("", line)
            if not line.strip():
                continue
        if (_LONE_PAGE.match(line) and line.strip()) or _URL_ONLY.match(line) or _LINKS_ONLY.match(line):
            continue
        if paged and wanted_title and _running_header(line, wanted_title):
            continue
        kept.append(line)
    return "\n".join(kept)


def _underline(kept: list[str]) -> None:
    """A setext/reST underline makes the line above a heading; a rule under nothing (a horizontal rule,
    or a reST overline) just goes."""
    above = kept[-1] if kept else ""
    if not above.strip() or _ITEM_OR_ROW.match(above) or above.lstrip().startswith("#"):
        return  # a horizontal rule, or the overline of a title yet to come
    kept[-1] = "## " + above.strip()


def _running_header(line: str, title: str) -> bool:
    flat = _flat(line)
    return (
        title in flat.casefold()
        and len(flat) <= len(title) + RUNNING_HEADER_EXTRA
        and not _SENTENCE_END.search(flat)
        and not flat.startswith("#")
    )


def _flat(text: str) -> str:
    return " ".join(text.split())
