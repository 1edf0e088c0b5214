"""Indexing into the embedded store: real files in a temp dir, the real MiniLM model, a real SQLite file."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from indexing.chunking import Chunker
from indexing.factory import EMBEDDING_CONTEXT_RESERVE, LOCAL_OVERLAP
from indexing.pipeline import Indexer, IndexSummary
from indexing.targets import LocalTarget
from rag.contract import Asker
from rag.local.embedder import DIMENSIONS, MAX_TOKENS, MODEL_NAME, LocalEmbedder
from rag.local.store import LocalStore
from tests.commandline import run_ragbot

ROOT = Path(__file__).resolve().parents[2]
CHUNKER = Chunker(MAX_TOKENS - EMBEDDING_CONTEXT_RESERVE, LOCAL_OVERLAP)


async def index(store: Path, *roots: Path, recreate: bool = False, dry_run: bool = False) -> IndexSummary:
    target = LocalTarget(store, dimensions=DIMENSIONS, embedder_name=MODEL_NAME)
    try:
        return await Indexer(target, LocalEmbedder(), CHUNKER).run(
            list(roots), recreate=recreate, dry_run=dry_run
        )
    finally:
        await target.aclose()


def real(path: Path) -> str:
    """The absolute path the index records as a root."""
    return str(path.resolve())


def chunks_by_file(store: Path) -> dict[str, set[str]]:
    with LocalStore(store) as opened:
        rows = opened._db.execute("SELECT filepath, id FROM chunks").fetchall()
    out: dict[str, set[str]] = {}
    for filepath, chunk_id in rows:
        out.setdefault(filepath, set()).add(chunk_id)
    return out


def fingerprint(store: Path) -> str:
    """The bytes of the store and its write-ahead log: equal fingerprints mean nothing was written."""
    digest = hashlib.sha256()
    for suffix in ("", "-wal"):
        path = Path(f"{store}{suffix}")
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


async def test_indexes_every_type_and_skips_the_rest(tmp_path: Path, kb: Path) -> None:
    store = tmp_path / "index.sqlite"
    summary = await index(store, kb)

    assert summary.errors == []
    assert (summary.files_seen, summary.files_indexed, summary.files_unsupported) == (7, 5, 2)
    files = chunks_by_file(store)
    assert set(files) == {
        "it/vpn.md",
        "it/printers.txt",
        "hr/holidays.html",
        "hr/expenses.pdf",
        "it/laptops.docx",
    }
    assert summary.chunks_added == sum(len(ids) for ids in files.values())
    assert len(files["it/vpn.md"]) >= 3, "the long section is cut to the model's window"
    with LocalStore(store) as opened:
        hits = opened.keyword_search("FollowMe queue", top=3)
        assert hits and hits[0].chunk.filepath == "it/printers.txt"
        assert hits[0].chunk.title == "printers"  # no title in a .txt: the file name stands in
        pdf = opened.keyword_search("claim within 30 days", top=1)[0].chunk
        assert (pdf.filepath, pdf.page, pdf.title, pdf.heading_path) == (
            "hr/expenses.pdf",
            2,
            "Expenses",
            ["Claims"],
        )
        vpn = opened.keyword_search("sign in VPN app", top=1, asker=Asker(groups=["staff"]))[0].chunk
        assert vpn.group_ids == ["staff", "contractors"] and vpn.url == "https://kb.example/it/vpn"
        assert vpn.user_ids == ["oid-alex"]
        alex = opened.keyword_search("sign in VPN app", top=1, asker=Asker(aad_object_id="oid-alex"))
        assert alex[0].chunk.filepath == "it/vpn.md"
        for other in (Asker(groups=["finance"]), Asker(aad_object_id="oid-sam"), Asker()):
            hidden = opened.keyword_search("sign in VPN app", top=5, asker=other)
            assert all(hit.chunk.filepath != "it/vpn.md" for hit in hidden)
        query = (await LocalEmbedder().embed(["which laptop do designers get"]))[0]
        (top,) = opened.vector_search(np.asarray(query), top=1)
        assert top.chunk.filepath == "it/laptops.docx"


async def test_second_run_writes_nothing_and_edits_are_incremental(tmp_path: Path, kb: Path) -> None:
    store = tmp_path / "index.sqlite"
    first = await index(store, kb)
    before = fingerprint(store)

    again = await index(store, kb)
    assert fingerprint(store) == before
    assert (again.chunks_added, again.chunks_updated, again.chunks_deleted, again.files_indexed) == (
        0,
        0,
        0,
        0,
    )
    assert again.files_unchanged == 5 and again.files_skipped == 7

    old = chunks_by_file(store)
    vpn = kb / "it" / "vpn.md"
    vpn.write_text(vpn.read_text().split("## Troubleshooting")[0])  # shrink: the long section goes
    (kb / "it" / "printers.txt").unlink()
    edited = await index(store, kb)

    now = chunks_by_file(store)
    assert "it/printers.txt" not in now
    assert len(now["it/vpn.md"]) == 1 and len(old["it/vpn.md"]) >= 3
    assert now["it/vpn.md"] < old["it/vpn.md"], (
        "the untouched first chunk keeps its id; no stale chunk is left"
    )
    assert edited.files_deleted == 1 and edited.files_indexed == 1
    # every other VPN chunk and the printers chunk went; nothing new was needed
    assert (edited.chunks_added, edited.chunks_updated) == (0, 0)
    assert edited.chunks_deleted == len(old["it/vpn.md"]) - 1 + len(old["it/printers.txt"])
    assert sum(len(ids) for ids in now.values()) == first.chunks_added - edited.chunks_deleted


async def test_unreadable_files_are_reported_and_keep_their_old_chunks(tmp_path: Path, kb: Path) -> None:
    store = tmp_path / "index.sqlite"
    await index(store, kb)
    (kb / "hr" / "expenses.pdf").write_bytes(b"%PDF-1.7\n garbage")
    (kb / "it" / "laptops.docx").write_bytes(b"PK\x03\x04 not a zip")
    (kb / "it" / "notes.md").write_text("---\ntitle: [unclosed\n---\nbody\n")

    summary = await index(store, kb)

    reasons = {Path(e.path).name: e.reason for e in summary.errors}
    assert set(reasons) == {"expenses.pdf", "laptops.docx"}
    assert reasons["expenses.pdf"].startswith("unreadable PDF")
    assert reasons["laptops.docx"].startswith("unreadable DOCX")
    # a front matter that is not YAML does not reject the file: it is read leniently, with a warning
    assert [w.split(": ")[0] for w in summary.warnings] == [str(kb / "it" / "notes.md")]
    assert summary.files_failed == 2 and summary.files_unchanged == 3
    files = chunks_by_file(store)
    assert "hr/expenses.pdf" in files and "it/laptops.docx" in files, (
        "a file that became unreadable keeps its chunks"
    )


async def test_dry_run_and_recreate(tmp_path: Path, kb: Path) -> None:
    store = tmp_path / "index.sqlite"
    dry = await index(store, kb, dry_run=True)
    assert dry.dry_run and dry.files_indexed == 5 and dry.chunks_added > 0
    assert not store.exists()

    first = await index(store, kb)
    assert first.chunks_added == dry.chunks_added
    rebuilt = await index(store, kb, recreate=True)
    assert rebuilt.chunks_added == first.chunks_added and rebuilt.files_unchanged == 0
    assert sum(len(ids) for ids in chunks_by_file(store).values()) == first.chunks_added


def ragbot(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"RAGBOT_DATA_DIR": str(tmp_path / "data")}
    return run_ragbot("index", *args, cwd=tmp_path, env=env, timeout=300)


def test_command_line_prints_one_json_summary(tmp_path: Path, kb: Path) -> None:
    first = ragbot(tmp_path, str(kb), "--target", "local", "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    keys = ("files_seen", "files_skipped", "files_failed", "chunks_added", "chunks_updated", "chunks_deleted")
    assert {*keys, "seconds", "errors"} <= set(summary)
    assert summary["files_seen"] == 7 and summary["chunks_added"] > 0 and summary["errors"] == []
    assert "Indexed into local" in first.stderr and (tmp_path / "data" / "index.sqlite").exists()
    assert sorted(Path(p).name for p in summary["skipped"]) == ["README.md", "logo.png"]
    assert f"skipped (not a document): {kb / 'README.md'}" in first.stderr

    # Front matter that is not YAML and text that is not UTF-8: indexed, with a warning naming the line.
    (kb / "it" / "colon.md").write_text("---\ntitle: VPN: Windows\n---\n\nConnect first.\n")
    (kb / "it" / "latin.txt").write_bytes("Caf\u00e9 opening hours".encode("latin-1"))
    lenient = ragbot(tmp_path, str(kb), "--json")
    assert lenient.returncode == 0, lenient.stderr
    result = json.loads(lenient.stdout)
    assert result["files_indexed"] == 2 and result["errors"] == []
    assert [w.split(": line")[0] for w in result["warnings"]] == [
        str(kb / "it" / n) for n in ("colon.md", "latin.txt")
    ]
    assert f"{kb / 'it' / 'colon.md'}: line 2: front matter is not valid YAML" in lenient.stderr

    (kb / "it" / "broken.pdf").write_bytes(b"not a pdf")
    second = ragbot(tmp_path, str(kb), "--json")
    assert second.returncode == 1
    result = json.loads(second.stdout)
    assert [e["path"] for e in result["errors"]] == [str(kb / "it" / "broken.pdf")]
    assert (result["chunks_added"], result["chunks_updated"], result["chunks_deleted"]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["missing-folder"], "no such file or folder"), (["{kb}", "--chunk-tokens", "4"], "at least 16")],
)
def test_command_line_rejects_bad_input(tmp_path: Path, kb: Path, args: list[str], message: str) -> None:
    result = ragbot(tmp_path, *(a.format(kb=kb) for a in args), "--target", "local")
    assert result.returncode == 2 and message in result.stderr and result.stdout == ""
    assert not (tmp_path / "data" / "index.sqlite").exists()


def test_sample_knowledge_base_indexes_cleanly() -> None:
    """`make sample-index` input: every article loads, only README/questions are skipped."""
    from indexing.loaders import load
    from indexing.sources import discover

    found = discover([ROOT / "samples" / "helpdesk"])
    assert found.errors == []
    assert {p.name for p in found.skipped} <= {"README.md", "questions.jsonl"}
    assert not any(f.filepath.startswith("_") for f in found.files)
    for source in found.files:
        document = load(source.path.read_bytes(), source.path)
        assert document.title and document.sections, source.filepath


async def test_a_folder_that_cannot_be_read_removes_nothing(tmp_path: Path, kb: Path) -> None:
    store = tmp_path / "index.sqlite"
    first = await index(store, kb / "it", kb / "hr")
    summary = await index(store, kb / "it", tmp_path / "unmounted-share")
    assert [e.path for e in summary.errors] == [str(tmp_path / "unmounted-share")]
    assert summary.chunks_deleted == 0 and summary.files_deleted == 0
    assert sum(len(ids) for ids in chunks_by_file(store).values()) == first.chunks_added


async def test_an_index_without_roots_learns_them_and_keeps_its_names_and_ids(
    tmp_path: Path, kb: Path
) -> None:
    store = tmp_path / "index.sqlite"
    await index(store, kb)
    before = chunks_by_file(store)
    with closing(sqlite3.connect(store)) as db, db:
        db.execute("ALTER TABLE files DROP COLUMN root")  # the schema before roots were kept

    empty = tmp_path / "empty"
    empty.mkdir()
    assert (await index(store, empty)).files_deleted == 0  # no root learnt: nothing to place the old files
    sub = await index(store, kb / "it")
    assert (sub.files_unchanged, sub.files_indexed, sub.files_deleted) == (3, 0, 0)
    assert chunks_by_file(store) == before  # no duplicates under names relative to it/, nothing removed
    with LocalStore(store) as opened:
        assert opened.file_roots() == dict.fromkeys(
            ["it/laptops.docx", "it/printers.txt", "it/vpn.md"], real(kb)
        )

    (kb / "hr" / "holidays.html").unlink()
    full = await index(store, kb)
    assert (full.files_unchanged, full.files_deleted) == (4, 1)
    assert set(chunks_by_file(store)) == set(before) - {"hr/holidays.html"}
