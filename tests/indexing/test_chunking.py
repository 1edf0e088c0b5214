"""Chunking: token budget, cut points (headings, paragraphs, sentences), overlap, pages, stable ids."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from indexing.chunking import Chunker, count
from indexing.documents import Document, Section
from indexing.pipeline import make_chunks
from indexing.sources import SourceFile


def sentence(n: int) -> str:
    return f"Sentence number {n} explains how the expense approval workflow handles receipts."


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def test_small_sections_share_a_chunk_and_keep_the_first_heading_path() -> None:
    sections = [
        Section("# Title\n\nIntro.", ("Title",)),
        Section("## A\n\nFirst part.", ("Title", "A")),
        Section("## B\n\nSecond part.", ("Title", "B")),
    ]
    (passage,) = Chunker(100, 10).split(sections)
    assert passage.text == "# Title\n\nIntro.\n\n## A\n\nFirst part.\n\n## B\n\nSecond part."
    assert passage.heading_path == ("Title",)


def test_cuts_prefer_headings_then_paragraphs_then_sentences() -> None:
    body = " ".join(sentence(n) for n in range(6))  # one paragraph of about 90 tokens
    sections = [
        Section(f"## One\n\n{body}", ("One",)),
        Section(f"## Two\n\n{body}\n\n{body}", ("Two",)),
    ]
    passages = Chunker(120, 0).split(sections)
    assert [p.heading_path for p in passages] == [("One",), ("Two",), ("Two",)]
    assert passages[1].text.startswith("## Two") and passages[2].text == body  # cut at the paragraph
    long = " ".join(sentence(n) for n in range(30))
    cut = Chunker(64, 0).split([Section(long)])
    assert all(p.text.endswith("receipts.") for p in cut), "sentence-sized cuts end at a full stop"


def test_overlap_repeats_the_end_of_the_previous_chunk_within_a_section() -> None:
    text = " ".join(sentence(n) for n in range(40))
    passages = Chunker(100, 20).split([Section(text)])
    assert len(passages) > 2
    for before, after in itertools.pairwise(passages):
        shared = next((k for k in range(len(after.text), 0, -1) if before.text.endswith(after.text[:k])), 0)
        assert 0 < count(after.text[:shared]) <= 20, "the next chunk starts with the end of this one"
    heading_cut = Chunker(24, 6).split([Section(f"## A\n\n{sentence(1)}"), Section(f"## B\n\n{sentence(2)}")])
    assert heading_cut[1].text.startswith("## B"), "no overlap across a heading"


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    text = " ".join(f"word{n}" for n in range(400))
    passages = Chunker(50, 0).split([Section(text)])
    assert all(count(p.text) <= 50 for p in passages)
    assert words(" ".join(p.text for p in passages)) == words(text)


def test_pages_are_never_merged() -> None:
    passages = Chunker(500, 50).split([Section("Page one.", page=1), Section("Page two.", page=2)])
    assert [(p.page, p.text) for p in passages] == [(1, "Page one."), (2, "Page two.")]


@settings(max_examples=40, deadline=None)
@given(
    paragraphs=st.lists(
        st.lists(st.integers(0, 99), min_size=1, max_size=25).map(
            lambda ns: " ".join(sentence(n) for n in ns)
        ),
        min_size=1,
        max_size=8,
    ),
    size=st.integers(16, 300),
)
def test_every_chunk_fits_and_no_text_is_lost(paragraphs: list[str], size: int) -> None:
    chunker = Chunker(size, size // 4)
    passages = chunker.split([Section("\n\n".join(paragraphs))])
    assert all(count(p.text) <= size for p in passages)
    joined = " ".join(p.text for p in passages)
    for word in set(words("\n\n".join(paragraphs))):
        assert word in joined


def test_chunk_ids_are_stable_and_depend_on_file_position_and_text(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("x")
    doc = Document(title="A", sections=[Section(f"# A\n\n{sentence(1)}"), Section(f"## B\n\n{sentence(2)}")])
    chunker = Chunker(20, 0)
    first = make_chunks(doc, SourceFile(path, "a.md"), "h1", chunker)
    again = make_chunks(doc, SourceFile(path, "a.md"), "h2", chunker)
    moved = make_chunks(doc, SourceFile(path, "b.md"), "h1", chunker)
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first} | {c.id for c in moved}) == 2 * len(first)
    assert [c.chunk_id for c in first] == ["0", "1"] and first[0].last_modified
    assert all(re.fullmatch(r"[0-9a-f]{32}", c.id) for c in first)


def test_base_url_cites_files_without_their_own_url(tmp_path: Path) -> None:
    path = tmp_path / "a b.md"
    path.write_text("x")
    source = SourceFile(path, "hr/a b.md")
    doc = Document(title=None, sections=[Section("Text.")])
    (chunk,) = make_chunks(doc, source, "h", Chunker(64, 0), base_url="https://files.example/kb/")
    assert chunk.url == "https://files.example/kb/hr/a%20b.md" and chunk.title == "a b"
    doc.url = "https://kb.example/own"
    assert (
        make_chunks(doc, source, "h", Chunker(64, 0), base_url="https://x")[0].url == "https://kb.example/own"
    )
