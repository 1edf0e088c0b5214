"""Local retrieval latency at 1k / 10k / 50k chunks, and the embedding model's throughput.

Run by hand: `.venv/bin/python -m bench.local_retrieval` (about 2 minutes on 2 cores; `--quick`: 1k and 10k
only), or as the `retrieval` piece of `python -m bench`.

Chunks are synthetic: ~170 words drawn with a Zipf-like law from the English words of the model's own
vocabulary (so bm25 sees realistic term statistics), random unit vectors, 10 % of them restricted to a
group. Baselines, measured in the same run: FTS5 ranking the same OR-ed terms itself (`MATCH ... ORDER BY
rank` with the store's bm25 weights, on its own connection: what keyword search cost before it ranked in
memory) and a bare numpy matmul + argpartition over an identical matrix (the floor of exact search). The
full query is what the grounded pipeline runs per question (`LocalRetriever.retrieve`: term statistics,
both searches, fusion, relevance) with the query embedding left out (a fixed vector per text; the model's
own time is the "embed one short query" row). Only the embedding rows run the model.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.rows import Row, render
from rag.contract import Asker
from rag.documents import Chunk
from rag.local.embedder import DIMENSIONS, MODEL_NAME, LocalEmbedder
from rag.local.retriever import LocalRetriever
from rag.local.store import BM25_WEIGHTS, LocalStore, query_terms
from rag.tokens import count_tokens, tokenizer

BENCH = "retrieval"
SIZES = (1_000, 10_000, 50_000)
CHUNKS_PER_FILE = 25
WORDS_PER_CHUNK = 170  # about 256 model tokens, the indexer's chunk size
TOP = 10
SALES = Asker(groups=["sales"])  # trimmed searches: a member of one group
BARE_FTS = (
    f"SELECT rowid, bm25(chunks_fts, {', '.join(map(str, BM25_WEIGHTS.values()))}) AS rank FROM chunks_fts "
    "WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?"
)


def vocabulary() -> list[str]:
    """Whole English words of the WordPiece vocabulary, in its (roughly frequency) order."""
    vocab = tokenizer().get_vocab()
    ordered = sorted(vocab, key=vocab.__getitem__)
    return [word for word in ordered if word.isalpha() and word.isascii()][:20_000]


class Corpus:
    """Reproducible synthetic chunks, queries and unit vectors."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.words = np.array(vocabulary())
        weights = np.cumsum(1.0 / (np.arange(len(self.words), dtype=np.float64) + 20.0))
        self.cdf = weights / weights[-1]

    def text(self, words: int) -> str:
        picks = np.searchsorted(self.cdf, self.rng.random(words))  # Zipf-like draw, cheaper than choice(p=)
        return " ".join(self.words[np.minimum(picks, len(self.words) - 1)])

    def queries(self, n: int) -> list[str]:
        return [self.text(int(self.rng.integers(3, 9))) for _ in range(n)]

    def vectors(self, n: int) -> np.ndarray:
        v = self.rng.standard_normal((n, DIMENSIONS)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def add_files(self, store: LocalStore, first: int, stop: int) -> None:
        for f in range(first, stop):
            path = f"docs/file{f:05d}.md"
            chunks = [
                Chunk(
                    id=f"{path}#{i}",
                    content=f"{self.text(WORDS_PER_CHUNK)} error 0x8007{f % 9999:04d}",
                    title=self.text(4),
                    filepath=path,
                    chunk_id=str(i),
                    content_hash=f"h{f}",
                    group_ids=["finance"] if f % 10 == 0 else [],
                )
                for i in range(CHUNKS_PER_FILE)
            ]
            store.replace_file(path, chunks, self.vectors(len(chunks)))


class FixedEmbedder:
    """A unit vector per text, drawn from its checksum: the retriever's query path without the model."""

    name = MODEL_NAME
    dimensions = DIMENSIONS

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = [
            np.random.default_rng(zlib.crc32(text.encode())).standard_normal(DIMENSIONS) for text in texts
        ]
        vectors = np.array(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fts_match(text: str) -> str:
    """The query's terms quoted and OR-ed, as FTS5 query syntax."""
    return " OR ".join(f'"{term}"' for term in query_terms(text))


def timed(actions: Sequence[Callable[[], object]]) -> tuple[float, float]:
    """p50 and p95 in ms of running each action once."""
    samples = []
    for action in actions:
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def latency(
    figure: str, measured: tuple[float, float], baseline: str, base: tuple[float, float], note: str = ""
) -> Row:
    return Row(
        bench=BENCH,
        figure=figure,
        value=measured[0],
        unit="ms p50",
        baseline=f"{baseline} p50",
        baseline_value=base[0],
        higher_is_better=False,
        note=f"p95 {measured[1]:.2f} ms (baseline {base[1]:.2f}){note}",
    )


def store_rows(sizes: Sequence[int], queries: int) -> list[Row]:
    corpus = Corpus(seed=7)
    rows: list[Row] = []
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        retriever = LocalRetriever(path, FixedEmbedder())
        with LocalStore(path) as store:
            raw = sqlite3.connect(path)
            files = 0
            for size in sizes:
                start = time.perf_counter()
                corpus.add_files(store, files, size // CHUNKS_PER_FILE)
                written = size - files * CHUNKS_PER_FILE
                write_rate = written / (time.perf_counter() - start)
                files = size // CHUNKS_PER_FILE
                texts = corpus.queries(queries)
                vectors = corpus.vectors(queries)
                label = f"{size // 1000}k chunks"

                store.vector_search(vectors[0], TOP)
                with LocalStore(path) as cold:  # a server opening the file: the first search loads it all
                    cold_ms = timed([lambda v=vectors[0], s=cold: s.vector_search(v, TOP)])[0]
                corpus.add_files(store, 0, 1)  # `ragbot index` rewrites one file: the matrix catches up
                refresh_ms = timed([lambda v=vectors[0]: store.vector_search(v, TOP)])[0]
                keyword = timed([lambda q=q: store.keyword_search(q, TOP) for q in texts])
                bare_fts = timed(
                    [
                        lambda q=q: raw.execute(
                            BARE_FTS,
                            (fts_match(q), TOP),
                        ).fetchall()
                        for q in texts
                    ]
                )
                vector = timed([lambda v=v: store.vector_search(v, TOP) for v in vectors])
                matrix = corpus.vectors(size)
                bare_numpy = timed(
                    [lambda v=v, m=matrix: np.argpartition(-(m @ v), TOP)[:TOP] for v in vectors]
                )
                both = timed(
                    [
                        lambda q=q, v=v: (
                            store.keyword_search(q, TOP, SALES),
                            store.vector_search(v, TOP, SALES),
                        )
                        for q, v in zip(texts, vectors, strict=True)
                    ]
                )
                loop.run_until_complete(retriever.retrieve(texts[0], top=TOP))  # opens the file
                questions = [
                    lambda q=q: loop.run_until_complete(retriever.retrieve(q, top=TOP, asker=SALES))
                    for q in texts
                ]
                full = timed(questions)  # the retriever's own store reads each term's postings on first use
                again = timed(questions)  # ... and keeps them until the file changes
                rows += [
                    latency(f"keyword search, {label}", keyword, "FTS5 ranking it", bare_fts),
                    latency(f"vector search, {label}", vector, "bare numpy matmul", bare_numpy),
                    latency(
                        f"keyword + vector, trimmed, {label}", both, "sum of bare", _sum(bare_fts, bare_numpy)
                    ),
                    latency(
                        f"full retriever query, no embedding, {label}",
                        full,
                        "FTS5 ranking alone",
                        bare_fts,
                        f"; asked again: p50 {again[0]:.2f} ms",
                    ),
                    Row(
                        bench=BENCH,
                        figure=f"vector search after one file changed, {label}",
                        value=refresh_ms,
                        unit="ms",
                        baseline="first search after opening",
                        baseline_value=cold_ms,
                        higher_is_better=False,
                        note="incremental refresh vs full load",
                    ),
                    Row(
                        bench=BENCH,
                        figure=f"replace_file writes up to {label}",
                        value=write_rate,
                        unit="chunks/s",
                    ),
                ]
                print(f"  {label} done", flush=True)
            raw.close()
        loop.run_until_complete(retriever.aclose())
    loop.close()
    return rows


def _sum(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return a[0] + b[0], a[1] + b[1]


def embedding_rows(passages: int, queries: int) -> list[Row]:
    model = LocalEmbedder()
    start = time.perf_counter()
    model.warm_up()
    load_s = time.perf_counter() - start
    corpus = Corpus(seed=11)
    full = [corpus.text(300) for _ in range(passages)]
    assert all(count_tokens(text) >= 256 for text in full)
    mixed = [corpus.text(int(corpus.rng.integers(12, 200))) for _ in range(passages * 2)]

    def rates(texts: list[str], rounds: int = 2) -> tuple[float, float]:
        """Best texts/s through `embed_sync` in one call and with one call per text (the baseline),
        alternating so a change in the machine's load hits both alike."""
        model.embed_sync(texts[:4])  # first runs of new shapes are slower: keep them out of both figures
        batched = single = 0.0
        for _ in range(rounds):
            start = time.perf_counter()
            model.embed_sync(texts)
            batched = max(batched, len(texts) / (time.perf_counter() - start))
            start = time.perf_counter()
            for text in texts:
                model.embed_sync([text])
            single = max(single, len(texts) / (time.perf_counter() - start))
        return batched, single

    query_ms = timed([lambda q=q: model.embed_sync([q]) for q in corpus.queries(queries)])
    rows = [Row(bench=BENCH, figure="embedding model load", value=load_s, unit="s", higher_is_better=False)]
    for figure, texts in (
        ("raw embedding, 256-token passages", full),
        ("raw embedding, 15-250 tokens", mixed),
    ):
        batched, single = rates(texts)
        rows.append(
            Row(
                bench=BENCH,
                figure=figure,
                value=batched,
                unit="passages/s",
                baseline="one text per call",
                baseline_value=single,
            )
        )
    rows.append(
        Row(
            bench=BENCH,
            figure="embed one short query",
            value=query_ms[0],
            unit="ms p50",
            higher_is_better=False,
            note=f"p95 {query_ms[1]:.1f} ms",
        )
    )
    return rows


def rows(quick: bool = False) -> list[Row]:
    """The `retrieval` piece of `python -m bench`."""
    sizes = SIZES[:2] if quick else SIZES
    return store_rows(sizes, queries=50 if quick else 200) + embedding_rows(
        passages=12 if quick else 32, queries=20 if quick else 50
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.local_retrieval", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1k and 10k chunks, fewer queries")
    print(render(rows(quick=parser.parse_args().quick)))


if __name__ == "__main__":
    main()
