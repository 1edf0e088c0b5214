"""Server processes for the reliability tests: a free loopback port, waiting until a child serves, and
the bot server (`tests.reliability.crash_server`) run as a process to be killed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

import aiohttp

HOST = "127.0.0.1"
START_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def wait_healthy(process: asyncio.subprocess.Process, url: str) -> None:
    """Poll `url`/healthz until it answers 200; fail if the process exits or START_S pass first."""
    async with asyncio.timeout(START_S), aiohttp.ClientSession() as session:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the server exited with {process.returncode} before serving")
            try:
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


REPO = Path(__file__).resolve().parents[2]


class BotProcess:
    """`python -m tests.reliability.crash_server` on a port of its own, with `env` as extra settings."""

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "server.log").open("ab") as log:  # the child keeps its own descriptor
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.reliability.crash_server",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO), **self.env},
                stdout=log,
                stderr=log,
            )
        await wait_healthy(self.process, self.url)

    async def kill(self) -> None:
        """`kill -9`."""
        assert self.process is not None
        if self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)
        await self.process.wait()


async def start_serve(env: dict[str, str], log: Path) -> tuple[asyncio.subprocess.Process, str]:
    """`ragbot serve --access-log` on a free loopback port with exactly `env`, its output into `log` (whose
    folder is its working directory); returns once it answers /healthz."""
    port = free_port()
    with log.open("wb") as out:  # the child keeps its own descriptor
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ragbot",
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--access-log",
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    url = f"http://{HOST}:{port}"
    await wait_healthy(process, url)
    return process, url


async def logged(log: Path, needle: str) -> None:
    """Wait (10 s at most) until a server's log file holds `needle`."""
    async with asyncio.timeout(10):
        while needle not in await asyncio.to_thread(log.read_text, errors="replace"):  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # another process writes the file: no event to wait on
