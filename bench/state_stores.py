"""Turns per second and p99 at 32 conversations with thread memory in Redis and in Azure Blob storage
(Azurite), against the default SQLite store, in the same run.

Run by hand: `.venv/bin/python -m bench.state_stores` (about a minute; `--quick` shorter), or as the
`stores` piece of `python -m bench`. The same processes as the throughput piece (`bench.bot_throughput`:
load generator, fake Bot Connector, ragbot with an instant answerer) plus the store's own server,
started here as the tests start it (`tests.servers`: Debian's redis-server with an fsynced append-only
file, Azurite from build/, both installed by `make bench`). The ragbot server gets a CPU of its own; the
store shares the other with the load generator and the connector.

A turn costs one read and one write of the thread's document; on the shared stores also the per-user
rate-limit counter (Redis: one script; Blob: a read and a conditional write). The note gives the CPU
each turn cost the bot and the store's server, which says which of them is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from bench.bot_throughput import Process, Result, _cpu_split, load
from bench.loopback import cpu_seconds
from bench.rows import Row, render
from tests.servers import Azurite, RedisServer, Server

BENCH = "stores"
CONVERSATIONS = 32
STORES = ("sqlite", "redis", "blob")


def _store_cpu(server: Server | None) -> float:
    """CPU the store's server used so far (Azurite's node process is the child of its launcher)."""
    if server is None or server.process is None:
        return 0.0
    pids = [server.process.pid]
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    if children.exists():
        pids += [int(pid) for pid in children.read_text().split()]
    return sum(cpu_seconds(pid) for pid in pids)


async def measure(seconds: float) -> dict[str, tuple[Result, float]]:
    """Per store: the load's result and the store server's CPU ms per turn."""
    results: dict[str, tuple[Result, float]] = {}
    server_cpus, other_cpus = _cpu_split()
    if other_cpus:
        os.sched_setaffinity(0, other_cpus)
    with tempfile.TemporaryDirectory(prefix="ragbot-bench-stores-") as tmp:
        redis = RedisServer(Path(tmp) / "redis")
        azurite = Azurite(Path(tmp) / "azurite")
        await asyncio.gather(asyncio.to_thread(redis.start), asyncio.to_thread(azurite.start))
        os.environ["RAGBOT_REDIS_URL"] = redis.url
        os.environ["RAGBOT_BLOB_CONNECTION_STRING"] = azurite.connection_string
        servers: dict[str, Server | None] = {"sqlite": None, "redis": redis, "blob": azurite}
        try:
            async with Process("connector", cpus=other_cpus) as connector:
                for store in STORES:
                    data_dir = Path(tmp) / f"data-{store}"
                    data_dir.mkdir()
                    async with Process("ragbot", str(data_dir), store, cpus=server_cpus) as server:
                        url = connector.url + "/"
                        await load(server.url, url, CONVERSATIONS, min(1.0, seconds / 3), 0.0)
                        cpu, store_cpu = server.cpu_seconds(), _store_cpu(servers[store])
                        result = await load(server.url, url, CONVERSATIONS, seconds, 0.0)
                        cpu, store_cpu = server.cpu_seconds() - cpu, _store_cpu(servers[store]) - store_cpu
                        turns = max(1, result.turns)
                        result.cpu_ms_per_turn = cpu * 1000 / turns
                        results[store] = (result, store_cpu * 1000 / turns)
        finally:
            redis.kill()
            azurite.kill()
    return results


def to_rows(results: dict[str, tuple[Result, float]]) -> list[Row]:
    sqlite, _ = results["sqlite"]
    rows = []
    for store in STORES:
        result, store_ms = results[store]
        note = (
            f"p50/p99 {result.p50_ms:.1f}/{result.p99_ms:.1f} ms "
            f"(sqlite {sqlite.p50_ms:.1f}/{sqlite.p99_ms:.1f}); CPU/turn bot {result.cpu_ms_per_turn:.2f} ms"
        )
        if store != "sqlite":
            note += f", {store} server {store_ms:.2f} ms"
        if result.errors:
            note += f"; {result.errors} errors"
        rows.append(
            Row(
                bench=BENCH,
                figure=f"ragbot turns/s, {CONVERSATIONS} conv., memory in {store}",
                value=result.turns_per_s,
                unit="turns/s",
                baseline="sqlite (default) store",
                baseline_value=sqlite.turns_per_s,
                note=note,
            )
        )
        rows.append(
            Row(
                bench=BENCH,
                figure=f"p99 turn, {CONVERSATIONS} conv., memory in {store}",
                value=result.p99_ms,
                unit="ms",
                baseline="sqlite (default) store",
                baseline_value=sqlite.p99_ms,
                higher_is_better=False,
            )
        )
    return rows


def rows(quick: bool = False) -> list[Row]:
    return to_rows(asyncio.run(measure(3.0 if quick else 8.0)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 s per store instead of 8")
    print(render(rows(quick=parser.parse_args().quick)))


if __name__ == "__main__":
    main()
