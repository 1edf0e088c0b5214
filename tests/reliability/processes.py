"""Server processes for the reliability tests: a free loopback port, and waiting until a child serves."""

from __future__ import annotations

import asyncio
import socket

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
