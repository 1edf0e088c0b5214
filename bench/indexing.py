"""Local indexing throughput (chunks/s) next to the embedding model's raw passages/s, in the same run.

Run by hand: `.venv/bin/python -m bench.indexing` (a few minutes on 2 cores; `--docs 500` or `--quick` for
a smaller generated corpus), or as the `indexing` piece of `python -m bench`.

Two corpora: the sample knowledge base (`samples/helpdesk`: Markdown, HTML, a PDF, a DOCX) and a generated
one of short Markdown articles (5,000 by default, about one chunk each, words drawn like
`bench.local_retrieval`'s corpus). Each is indexed into a fresh SQLite store with the real pipeline
(loaders, chunker, MiniLM, store), then indexed again unchanged (the incremental path: hashing only).
The baseline is the bare model: `LocalEmbedder.embed_sync` over the same passages (all of them for the
sample KB, a sample of them for the generated corpus), so the ratio is what loading, chunking and writing
cost on top of embedding.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import tempfile
import time
from pathlib import Path

from bench.local_retrieval import Corpus
from bench.rows import Row, render
from indexing.chunking import Chunker
from indexing.factory import EMBEDDING_CONTEXT_RESERVE, LOCAL_OVERLAP
from indexing.loaders import load
from indexing.pipeline import Indexer, IndexSummary, embedding_text, make_chunks
from indexing.sources import content_hash, discover
from indexing.targets import LocalTarget
from rag.local.embedder import DIMENSIONS, MAX_TOKENS, MODEL_NAME, LocalEmbedder

BENCH = "indexing"
SAMPLE_KB = Path(__file__).resolve().parent.parent / "samples" / "helpdesk"
DOCS, QUICK_DOCS = 5_000, 500
RAW_SAMPLE = 500  # passages embedded bare for the generated corpus's baseline


def chunker() -> Chunker:
    return Chunker(MAX_TOKENS - EMBEDDING_CONTEXT_RESERVE, LOCAL_OVERLAP)


def generate(root: Path, count: int, seed: int = 7) -> None:
    """`count` short Markdown articles in 50 folders (front matter, a heading, two small sections)."""
    corpus = Corpus(seed)
    for index in range(count):
        folder = root / f"area-{index % 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"article-{index:05d}.md").write_text(
            f"---\ntitle: Article {index}\nurl: https://kb.example/{index}\n---\n\n# Article {index}\n\n"
            f"{corpus.text(20)}.\n\n## Details\n\n{corpus.text(25)}.\n",
            encoding="utf-8",
        )


def passages(root: Path) -> list[str]:
    """The texts the indexer embeds for `root`, built with the same loader and chunker."""
    out: list[str] = []
    for source in discover([root]).files:
        data = source.path.read_bytes()
        document = load(data, source.path)
        out += [embedding_text(c) for c in make_chunks(document, source, content_hash(data), chunker())]
    return out


async def index(root: Path, store: Path) -> IndexSummary:
    target = LocalTarget(store, dimensions=DIMENSIONS, embedder_name=MODEL_NAME)
    try:
        return await Indexer(target, LocalEmbedder(), chunker()).run([root])
    finally:
        await target.aclose()


def raw_rate(texts: list[str]) -> float:
    embedder = LocalEmbedder()
    embedder.warm_up()
    started = time.perf_counter()
    embedder.embed_sync(texts)
    return len(texts) / (time.perf_counter() - started)


def measure(name: str, root: Path, raw_texts: list[str], note: str) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-indexing-") as tmp:
        store = Path(tmp) / "index.sqlite"
        first = asyncio.run(index(root, store))
        again = asyncio.run(index(root, store))
    if first.files_failed or again.chunks_added or again.chunks_updated or again.chunks_deleted:
        return [
            Row(bench=BENCH, figure=f"{name}: (not measured)", value=None, note=f"unexpected run: {first}")
        ]
    raw = raw_rate(raw_texts)
    files = first.files_indexed
    return [
        Row(
            bench=BENCH,
            figure=f"{name}: index {files} files, {first.chunks_added} chunks",
            value=first.chunks_added / first.seconds,
            unit="chunks/s",
            baseline=f"raw model, {len(raw_texts)} passages",
            baseline_value=raw,
            note=f"{first.seconds:.1f} s; {note}",
        ),
        Row(
            bench=BENCH,
            figure=f"{name}: unchanged re-run",
            value=again.files_seen / max(again.seconds, 1e-6),
            unit="files/s",
            note=f"{again.seconds:.2f} s, nothing written",
        ),
    ]


def rows(quick: bool = False, docs: int | None = None) -> list[Row]:
    logging.getLogger().setLevel(logging.WARNING)
    out = measure("sample KB", SAMPLE_KB, passages(SAMPLE_KB), "Markdown, HTML, PDF, DOCX")
    count = docs or (QUICK_DOCS if quick else DOCS)
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        root = Path(tmp) / "corpus"
        generate(root, count)
        texts = passages(root)
        sample = random.Random(1).sample(texts, min(RAW_SAMPLE, len(texts)))
        out += measure(f"generated {count} docs", root, sample, "short Markdown articles")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.indexing", description=__doc__)
    parser.add_argument("--docs", type=int, help=f"size of the generated corpus (default {DOCS})")
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK_DOCS}-document corpus")
    args = parser.parse_args()
    print(render(rows(quick=args.quick, docs=args.docs)))


if __name__ == "__main__":
    main()
