"""The slow-client probe of issue #13 (item 6), against a real `ragbot serve` process.

Run by hand: `.venv/bin/python -m bench.slow_clients` (`--quick`: fewer requests), or as the
`slowclients` piece of `python -m bench`.

The server runs with a low open-file limit (320, soft and hard: room for the slow sockets plus a few
dozen of its own) and its default deadlines and cap. One client
(127.0.0.1) opens 300 sockets that send their headers and half a body, and leaves them; another client
(127.0.0.2: Linux routes all of 127.0.0.0/8 to loopback) meanwhile sends ordinary turns (`POST
/api/messages`, a 1 kB question, `expectReplies`, so the reply comes back in the response; the local
backend on the synthetic 1k-chunk index of `bench.local_retrieval`). The figure is
that client's latency while the slow sockets are held, against the same turns before the probe, plus
how many of the 300 were closed at once (over the per-client cap), how many failed among the ordinary
turns, and when the held ones were closed (the body deadline, answered 408).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.loopback import HOST, ragbot_serve, turn
from bench.rows import Row, render
from bench.serve_rss import build_index

BENCH = "slowclients"
OTHER_CLIENT = "127.0.0.2"
SLOW_SOCKETS = 300
FD_LIMIT = 320
BODY = b'{"type": "message", "text": "' + b"x" * 2000 + b'"}'
HALF_BODY = (
    b"POST /api/messages HTTP/1.1\r\nHost: ragbot\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
    + BODY[: len(BODY) // 2]
)
CLOSE_WAIT_S = 60.0


async def turns(url: str, count: int) -> tuple[list[float], int]:
    """`count` ordinary turns from the other client, one after another: latencies (ms), failures."""
    latencies: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(local_addr=(OTHER_CLIENT, 0))
    async with aiohttp.ClientSession(url, connector=connector) as session:
        for index in range(count):
            activity = turn("x" * 1000, "http://127.0.0.1:9/", f"slow-{index}")
            activity["deliveryMode"] = "expectReplies"
            started = time.perf_counter()
            try:
                async with session.post("/api/messages", json=activity) as response:
                    await response.read()
                    failures += response.status != 200
            except aiohttp.ClientError:
                failures += 1
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies, failures


async def slow_socket(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A socket that sent headers and half a body (the writer must be kept: dropping it closes the
    socket); None when the server would not take it."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(HALF_BODY)
        await writer.drain()
    except OSError:
        return None
    return reader, writer


async def closed(reader: asyncio.StreamReader) -> tuple[float, bytes]:
    """When (monotonic) the server closed the socket, and what it said first."""
    received = b""
    try:
        while chunk := await reader.read(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return time.monotonic(), received[:12]


def p(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=100)[int(q) - 1] if len(latencies) > 1 else latencies[0]


async def probe(data_dir: Path, count: int) -> list[Row]:
    build_index(data_dir, 1_000)
    env = {
        "RAGBOT_DATA_DIR": str(data_dir),
        "RAGBOT_BACKEND": "local",
        "RAGBOT_STORAGE": "memory",
        "RAGBOT_USER_TURNS_PER_MINUTE": "10000",
    }
    async with ragbot_serve(env, data_dir / "serve.log") as server:
        port = int(server.url.rsplit(":", 1)[1])
        await turns(server.url, 20)  # warm-up
        quiet, quiet_failures = await turns(server.url, count)
        opened_at = time.monotonic()
        sockets = [await slow_socket(port) for _ in range(SLOW_SOCKETS)]
        watchers = [asyncio.create_task(closed(s[0])) for s in sockets if s is not None]
        await asyncio.sleep(0.5)
        at_once = sum(task.done() for task in watchers) + sockets.count(None)
        busy, busy_failures = await turns(server.url, count)
        held = [task for task in watchers if not task.done()]
        done, still_open = await asyncio.wait(held, timeout=CLOSE_WAIT_S) if held else (set(), set())
        results = [task.result() for task in done]
        last_closed = max((at for at, _ in results), default=opened_at) - opened_at
        answered_408 = sum(first.startswith(b"HTTP/1.1 408") for _, first in results)
        for task in still_open:
            task.cancel()
        for opened in sockets:
            if opened is not None:
                opened[1].close()
    return [
        Row(
            bench=BENCH,
            figure=f"turn from another client, {SLOW_SOCKETS} half-body sockets held",
            value=statistics.median(busy),
            unit="ms p50",
            baseline="same turns, no slow sockets, p50",
            baseline_value=statistics.median(quiet),
            higher_is_better=False,
            note=f"p99 {p(busy, 99):.1f} ms (baseline {p(quiet, 99):.1f}); failed {busy_failures}/{count} "
            f"(baseline {quiet_failures}); fd limit {FD_LIMIT}; {at_once} of {SLOW_SOCKETS} closed at once "
            f"(per-client cap), {len(held)} held: {len(done)} closed by {last_closed:.1f} s "
            f"({answered_408} answered 408), {len(still_open)} still open after {CLOSE_WAIT_S:.0f} s",
        )
    ]


def rows(quick: bool = False) -> list[Row]:
    """The `slowclients` piece of `python -m bench`: the server inherits this process's low open-file
    limit, soft and hard, so it cannot lift it."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    with tempfile.TemporaryDirectory() as data_dir:
        return asyncio.run(probe(Path(data_dir), 100 if quick else 400))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(render(rows(parser.parse_args().quick)))


if __name__ == "__main__":
    main()
