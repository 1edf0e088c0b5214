"""Peak RSS of `ragbot serve` holding a 50k-chunk local index, against the same server on a 1k-chunk index.

Run by hand: `.venv/bin/python -m bench.serve_rss` (`--quick`: 10k chunks), or as the `rss` piece of
`python -m bench`. The index is the synthetic corpus of `bench.local_retrieval` (random unit vectors,
~170-word chunks). The server answers a few questions through `/api/messages` first, so the vector
matrix, the FTS pages and the embedding model are all resident when VmHWM is read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.local_retrieval import CHUNKS_PER_FILE, Corpus
from bench.loopback import FakeConnector, ragbot_serve, turn
from bench.rows import Row, render
from rag.local.store import LocalStore

BENCH = "rss"
QUESTIONS = ("How do I reset my password?", "error 0x80070005 access denied", "annual leave request portal")
"""The vectors are random, so strictness refuses most of these; every turn still embeds the question and
searches both indexes, which is what loads them."""
TURN_TIMEOUT_S = 60.0


def build_index(data_dir: Path, chunks: int) -> float:
    """The synthetic index at `data_dir/index.sqlite`; returns the seconds it took to write."""
    start = time.perf_counter()
    with LocalStore(data_dir / "index.sqlite") as store:
        Corpus(seed=5).add_files(store, 0, chunks // CHUNKS_PER_FILE)
    return time.perf_counter() - start


async def memory(data_dir: Path, turns: int) -> tuple[float, float]:
    """Start `ragbot serve` on `data_dir`, answer `turns` questions; (peak, current) RSS in MB."""
    connector = FakeConnector()
    await connector.start()
    env = {
        "RAGBOT_DATA_DIR": str(data_dir),
        "RAGBOT_BACKEND": "local",
        "RAGBOT_STORAGE": "memory",
        "RAGBOT_STREAMING": "false",
        "RAGBOT_USER_TURNS_PER_MINUTE": "10000",
    }
    try:
        async with (
            ragbot_serve(env, data_dir / "serve.log") as server,
            aiohttp.ClientSession() as session,
        ):
            for index in range(turns):
                activity = turn(QUESTIONS[index % len(QUESTIONS)], connector.url, f"rss-{index}")
                async with session.post(server.url + "/api/messages", json=activity) as response:
                    if response.status >= 300:
                        raise RuntimeError(
                            f"/api/messages answered {response.status}: {await response.text()}"
                        )
            try:
                async with asyncio.timeout(TURN_TIMEOUT_S):
                    await connector.wait_messages(turns)
            except TimeoutError:
                raise RuntimeError(
                    f"only {len(connector.messages())}/{turns} replies: {server.log_tail()}"
                ) from None
            return server.memory_mb()
    finally:
        await connector.stop()


def rows(quick: bool = False) -> list[Row]:
    """The `rss` piece of `python -m bench`."""
    size, base_size = (10_000, 1_000) if quick else (50_000, 1_000)
    turns = 3 if quick else 9
    with tempfile.TemporaryDirectory() as big_dir, tempfile.TemporaryDirectory() as small_dir:
        build_s = build_index(Path(big_dir), size)
        build_index(Path(small_dir), base_size)
        small, small_now = asyncio.run(memory(Path(small_dir), turns))
        big, big_now = asyncio.run(memory(Path(big_dir), turns))
    label = f"{size // 1000}k"
    return [
        Row(
            bench=BENCH,
            figure=f"peak RSS of ragbot serve, {label}-chunk index",
            value=big,
            unit="MB",
            baseline=f"{base_size // 1000}k-chunk index",
            baseline_value=small,
            higher_is_better=False,
            note=f"RSS after the turns {big_now:.0f} MB (baseline {small_now:.0f}); "
            f"{(big_now - small_now) / (size - base_size) * 1000:.2f} MB per 1k chunks; "
            f"index written in {build_s:.0f} s",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_rss", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10k chunks instead of 50k")
    print(render(rows(quick=parser.parse_args().quick)))


if __name__ == "__main__":
    main()
