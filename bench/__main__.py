"""`python -m bench` (`make bench`): run the benchmarks and print one table.

Each piece is a module with a function returning :class:`bench.rows.Row` values. Every piece runs in its own
child process with a time limit, so a piece that hangs is killed (its row says so), one piece's memory
does not inflate another's RSS figure, and the whole run stops by itself. See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.rows import Row, failed, render

ROWS_MARKER = "BENCH-ROWS "


@dataclass(frozen=True)
class Piece:
    name: str
    target: str  # "module:function"; the function takes quick: bool and returns rows
    description: str
    limit_s: float  # wall-clock limit of the full run; --quick uses a third of it


PIECES = (
    Piece(
        "throughput",
        "bench.bot_throughput:rows",
        "turns/s and p50/p99 at 1, 32, 128 conversations vs bare aiohttp and stock CloudAdapter",
        480,
    ),
    Piece(
        "stores",
        "bench.state_stores:rows",
        "turns/s and p99 at 32 conversations with memory in Redis and Blob storage (Azurite) vs SQLite",
        240,
    ),
    Piece(
        "streaming",
        "bench.streaming:rows",
        "first upstream token -> first streamed update on the Direct Line WebSocket",
        180,
    ),
    Piece("retrieval", "bench.local_retrieval:rows", "local retrieval latency at 1k, 10k, 50k chunks", 600),
    Piece("indexing", "bench.indexing:rows", "local indexing chunks/s vs raw embedding passages/s", 900),
    Piece(
        "history", "bench.history:rows", "building an Azure request's history, counts kept vs recounted", 60
    ),
    Piece("rss", "bench.serve_rss:rows", "peak RSS of `ragbot serve` holding a 50k-chunk index", 480),
    Piece(
        "directline",
        "bench.directline_probes:rows",
        "the local Direct Line probes of #13: RSS under 32 kB events, bot-role injection, a start flood",
        180,
    ),
    Piece(
        "connector",
        "bench.connector_chat:rows",
        "ragbot chat: 32 prompts in one call, answered at once vs one at a time",
        60,
    ),
    Piece(
        "slowclients",
        "bench.slow_clients:rows",
        "#13's slow-client probe: another client's turn latency while 300 half-body sockets are held",
        150,
    ),
)
BY_NAME = {piece.name: piece for piece in PIECES}


def _function(target: str) -> Callable[..., list[Row]]:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    function: Callable[..., list[Row]] = getattr(module, attribute)
    return function


def _run_here(piece: Piece, quick: bool) -> None:
    """Child mode: run one piece and print its rows as one marked JSON line."""
    rows = _function(piece.target)(quick=quick)
    payload = [Row.model_validate(row).model_dump() for row in rows]
    print(ROWS_MARKER + json.dumps(payload), flush=True)


def _run_child(piece: Piece, quick: bool) -> list[Row]:
    """Run a piece in a child process (own session, so the whole tree can be killed) within its limit."""
    limit = piece.limit_s / 3 if quick else piece.limit_s
    command = [sys.executable, "-m", "bench", "--piece", piece.name, *(["--quick"] if quick else [])]
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = child.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return [failed(piece.name, f"killed after the {limit:.0f} s limit")]
    for line in out.splitlines():
        if line.startswith(ROWS_MARKER):
            return [Row.model_validate(row) for row in json.loads(line[len(ROWS_MARKER) :])]
    last = (err.strip().splitlines() or ["no output"])[-1]
    return [failed(piece.name, f"exit {child.returncode}: {last[:150]}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BY_NAME),
        help="run only this piece (repeatable); default: all",
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests and sizes: a smoke run")
    parser.add_argument("--list", action="store_true", help="list the pieces and exit")
    parser.add_argument("--piece", choices=sorted(BY_NAME), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.list:
        for piece in PIECES:
            print(f"{piece.name:<11} {piece.description}")
        return 0
    if args.piece:
        _run_here(BY_NAME[args.piece], args.quick)
        return 0
    selected = [BY_NAME[name] for name in args.only] if args.only else list(PIECES)
    rows: list[Row] = []
    started = time.monotonic()
    for piece in selected:
        print(f"running {piece.name}: {piece.description} ...", file=sys.stderr, flush=True)
        rows.extend(_run_child(piece, args.quick))
    print(render(rows))
    print(f"\n{len(selected)} piece(s) in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
