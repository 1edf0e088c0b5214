"""#13 item 7, the conversation store's side: a read-only data directory is a clear start-up error
(unless memory lives elsewhere), and a full disk makes `/readyz` say so (503, never 500) while turns
get a polite reply, the history stays as it was and the server recovers when space returns.

The disks are real: small tmpfs mounts, remounted read-only or filled with a file.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.activity import thread_key
from bot.memory import ThreadMemory
from bot.state import STATE_FILE
from bot.state.sqlite import SqliteStore
from bot.turns import NOT_SAVED
from tests.bot.fakes import FakeConnector, activity
from tests.commandline import OUTER_SETTINGS, run_ragbot
from tests.mounts import fill, remount_read_only, tmpfs
from tests.reliability.processes import BotProcess, free_port, wait_healthy
from tests.servers import RedisServer

pytestmark = pytest.mark.reliability


def test_serve_on_a_read_only_data_dir_exits_2_naming_it(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "data", "1m") as data:
        remount_read_only(data)
        result = run_ragbot(
            "serve", "--port", str(free_port()), cwd=tmp_path, env={"RAGBOT_DATA_DIR": str(data)}
        )
    assert result.returncode == 2, result.stderr
    assert f"conversation memory cannot be kept in {data}" in result.stderr
    assert "Read-only file system" in result.stderr and "RAGBOT_STORAGE=redis" in result.stderr
    assert "Traceback" not in result.stderr


async def test_serve_on_a_read_only_data_dir_serves_when_memory_is_in_redis(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as redis, tmpfs(tmp_path / "data", "1m") as data:
        remount_read_only(data)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(OUTER_SETTINGS)}
        env |= {"RAGBOT_DATA_DIR": str(data), "RAGBOT_STORAGE": "redis", "RAGBOT_REDIS_URL": redis.url}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ragbot", "serve", "--port", str(port), cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await wait_healthy(process, f"http://127.0.0.1:{port}")
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/readyz") as r,
            ):
                assert r.status in (200, 503)  # no index in the empty directory: not ready, but serving
        finally:
            process.kill()
            await process.wait()


@pytest.fixture
async def disk(tmp_path: Path) -> AsyncIterator[Path]:
    with tmpfs(tmp_path / "disk", "8m") as mounted:
        yield mounted


async def stored_questions(data_dir: Path, body: dict[str, Any]) -> list[str]:
    store = SqliteStore(data_dir / STATE_FILE)
    try:
        history = (await ThreadMemory(store, 100_000).load(thread_key(body))).state.history()
    finally:
        await store.aclose()
    return [t.content for t in history if t.role == "user"]


async def test_a_full_disk_gets_a_polite_reply_a_503_readyz_and_recovers(
    disk: Path, aiohttp_server: Any
) -> None:
    connector = FakeConnector()
    service_url = str((await aiohttp_server(connector.app)).make_url("")).rstrip("/") + "/"
    server = BotProcess(disk)
    await server.start()

    def turn(n: int) -> dict[str, Any]:
        long = " and also" * 2000  # each turn adds ~20 kB: more than the WAL's spare room
        return activity(service_url, f"question {n}{long}", channel="emulator", activity_id=f"q{n}")

    async with aiohttp.ClientSession() as session:

        async def ask(n: int) -> list[str]:
            async with session.post(f"{server.url}/api/messages", json=turn(n)) as r:
                assert r.status == 200, await r.text()
            return [m.text for m in connector.received if m.reply_to_id == f"q{n}"]

        async def ready() -> tuple[int, dict[str, Any]]:
            async with session.get(f"{server.url}/readyz") as r:
                return r.status, await r.json()

        try:
            assert NOT_SAVED not in await ask(1)
            before = await stored_questions(disk, turn(1))
            filler = await asyncio.to_thread(fill, disk)

            replies = await ask(2)
            assert replies[-1] == NOT_SAVED, replies
            status, body = await ready()
            assert status == 503 and "full" in body["reason"] and str(disk) in body["reason"], body
            assert await stored_questions(disk, turn(1)) == before, "the history is unchanged"
            async with session.get(f"{server.url}/healthz") as r:
                assert r.status == 200

            filler.unlink()
            assert await ready() == (200, {"status": "ready", "backend": "fake"})
            assert NOT_SAVED not in await ask(3)
            assert len(await stored_questions(disk, turn(1))) == len(before) + 1
        finally:
            await server.kill()
