"""Cut a document into passages of at most `max_tokens` tokens.

Cuts fall at headings where they can, then at paragraphs, then lines, then sentences, and only as a last
resort inside a sentence (at a word boundary). Small neighbouring sections share a chunk (a section joins
the chunk before it only when it fits whole, so a heading never ends a chunk); a chunk that
continues a section cut mid-way starts with the last `overlap` tokens of the chunk before it, so a passage
never loses the sentence that introduces it. PDF pages are never merged, so a chunk's page is exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tokenizers import Encoding

from indexing.documents import Section
from rag.tokens import tokenizer

_PARAGRAPHS = re.compile(r"\n[ \t]*\n+")
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"')\]]))\s+")
# (separator regex, how pieces are joined again) from coarsest to finest
_LEVELS: tuple[tuple[re.Pattern[str], str], ...] = (
    (_PARAGRAPHS, "\n\n"),
    (re.compile(r"\n"), "\n"),
    (_SENTENCE_END, " "),
)


@dataclass(frozen=True)
class Passage:
    """One chunk's text and where it sits in its document."""

    text: str
    heading_path: tuple[str, ...]
    page: int | None


@dataclass(frozen=True)
class _Piece:
    text: str
    tokens: int
    heading_path: tuple[str, ...]
    page: int | None
    joiner: str  # how it attaches to the piece before it
    section_start: bool
    section_tokens: int = 0  # on a section's first piece: the whole section's size


def _encode(text: str) -> Encoding:
    return tokenizer().encode(text, add_special_tokens=False)


def count(text: str) -> int:
    return len(_encode(text).ids)


def _word_windows(text: str, limit: int) -> list[str]:
    """`text` in runs of at most `limit` tokens, cut between words when a word fits in a window."""
    encoding = _encode(text)
    words, offsets, total = encoding.word_ids, encoding.offsets, len(encoding.ids)
    out: list[str] = []
    start = 0
    while start < total:
        end = min(start + limit, total)
        if end < total:
            back = end
            while back > start and words[back] == words[back - 1]:
                back -= 1  # the window ends inside a word: end it before that word instead
            end = back if back > start else end
        out.append(text[offsets[start][0] : offsets[end - 1][1]])
        start = end
    return out


def _tail(text: str, limit: int) -> str:
    """The last `limit` tokens or fewer of `text`, starting at a word boundary."""
    if limit <= 0:
        return ""
    encoding = _encode(text)
    words, offsets, total = encoding.word_ids, encoding.offsets, len(encoding.ids)
    start = max(total - limit, 0)
    while 0 < start < total and words[start] == words[start - 1]:
        start += 1
    return text[offsets[start][0] :] if start < total else ""


class Chunker:
    """Token-budgeted splitter; `max_tokens` counts the MiniLM WordPiece tokens of a chunk's content."""

    def __init__(self, max_tokens: int, overlap: int) -> None:
        if max_tokens < 16:
            raise ValueError(f"chunk size must be at least 16 tokens, got {max_tokens}")
        if not 0 <= overlap <= max_tokens // 2:
            raise ValueError(f"overlap must be between 0 and half the chunk size, got {overlap}")
        self.max_tokens = max_tokens
        self.overlap = overlap

    def split(self, sections: list[Section]) -> list[Passage]:
        pieces: list[_Piece] = []
        for section in sections:
            first = len(pieces)
            self._pieces(section, section.text.strip(), 0, "\n\n", pieces)
            if len(pieces) > first:
                head = pieces[first]
                total = sum(piece.tokens for piece in pieces[first:])
                pieces[first] = _Piece(
                    head.text, head.tokens, head.heading_path, head.page, "\n\n", True, total
                )
        return self._merge(pieces)

    def _pieces(self, section: Section, text: str, level: int, joiner: str, out: list[_Piece]) -> None:
        """Append `text` as pieces that each fit in a chunk, cut at the coarsest boundary that does."""
        if not text:
            return
        tokens = count(text)
        if tokens <= self.max_tokens:
            out.append(_Piece(text, tokens, section.heading_path, section.page, joiner, False))
            return
        if level == len(_LEVELS):
            for part in _word_windows(text, self.max_tokens):
                out.append(_Piece(part, count(part), section.heading_path, section.page, " ", False))
            return
        pattern, inner = _LEVELS[level]
        parts = [p.strip() for p in pattern.split(text) if p.strip()]
        if len(parts) == 1:
            self._pieces(section, parts[0], level + 1, joiner, out)
            return
        for index, part in enumerate(parts):
            self._pieces(section, part, level + 1, joiner if index == 0 else inner, out)

    def _merge(self, pieces: list[_Piece]) -> list[Passage]:
        """Pack consecutive pieces into chunks up to the budget; never across a PDF page."""
        passages: list[Passage] = []
        text, tokens = "", 0
        path: tuple[str, ...] = ()
        page: int | None = None
        for piece in pieces:
            # a section joins the chunk only if all of it fits; otherwise it starts a chunk with its heading
            needed = piece.section_tokens if piece.section_start else piece.tokens
            fits = tokens + needed <= self.max_tokens and (not text or piece.page == page)
            if text and fits:
                text, tokens = text + piece.joiner + piece.text, tokens + piece.tokens
                continue
            if text:
                passages.append(Passage(text, path, page))
            text, tokens, path, page = piece.text, piece.tokens, piece.heading_path, piece.page
            if passages and not piece.section_start and passages[-1].page == page:
                lead = _tail(passages[-1].text, min(self.overlap, self.max_tokens - piece.tokens))
                if lead:
                    text, tokens = lead + piece.joiner + piece.text, count(lead) + piece.tokens
        if text:
            passages.append(Passage(text, path, page))
        return passages
