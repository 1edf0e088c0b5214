"""Loopback plumbing shared by the benchmarks that drive a real `ragbot serve` process.

A fake Bot Connector that takes the bot's replies, a free-port finder, a context manager that starts
`ragbot serve` in its own session and always kills it, and peak-RSS and CPU readers. Every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process `pid` used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LoopbackServer:
    """An aiohttp app on a free loopback port; subclasses add their routes in `routes`."""

    max_body = 1024**2

    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None

    def routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application(client_max_size=self.max_body)
        self.routes(app.router)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, HOST, port).start()
        self.url = f"http://{HOST}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class FakeConnector(LoopbackServer):
    """Plays the channel's Bot Connector: accepts every reply, remembers it, and wakes up waiters."""

    max_body = 8 * 1024 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def _activity(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self._changed.set()
        return web.json_response({"id": f"reply-{len(self.received)}"})

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v3/conversations/{conversation}/activities", self._activity)
        router.add_post("/v3/conversations/{conversation}/activities/{reply_to}", self._activity)

    def messages(self) -> list[dict[str, Any]]:
        """Final replies (type `message`), not typing indicators or stream updates."""
        return [a for a in self.received if a.get("type") == "message"]

    async def wait_messages(self, count: int) -> None:
        """Wait until at least `count` messages arrived (callers bound it with `asyncio.timeout`)."""
        while len(self.messages()) < count:
            self._changed.clear()
            await self._changed.wait()


def turn(text: str, service_url: str, conversation: str, user: str = "bench-user") -> dict[str, Any]:
    """A plain message activity on a channel that gets one final reply (no streaming)."""
    return {
        "type": "message",
        "id": f"{conversation}-{time.monotonic_ns()}",
        "channelId": "bench",
        "serviceUrl": service_url,
        "conversation": {"id": conversation},
        "from": {"id": user, "name": "Bench"},
        "recipient": {"id": "ragbot", "name": "ragbot"},
        "text": text,
    }


class Server:
    """A running `ragbot serve` child: its pid, base URL and log file."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def memory_mb(self) -> tuple[float, float]:
        """(VmHWM, VmRSS): peak and current resident set of the server process, from /proc, in MB."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                fields[name] = int(value.split()[0]) / 1024
        return fields["VmHWM"], fields["VmRSS"]

    def log_tail(self, lines: int = 5) -> str:
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])


@asynccontextmanager
async def ragbot_serve(env: Mapping[str, str], log: Path, ready_s: float = 60.0) -> AsyncIterator[Server]:
    """`ragbot serve` on a free loopback port with `env` added; waits for /readyz, kills it on exit."""
    port = free_port()
    full_env = {**os.environ, "RAGBOT_HOST": HOST, "RAGBOT_PORT": str(port), **env}
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "ragbot", "serve", "--host", HOST, "--port", str(port)],
            env=full_env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, f"http://{HOST}:{port}", log)
    try:
        async with asyncio.timeout(ready_s):
            await _wait_ready(server)
        yield server
    except TimeoutError:
        raise RuntimeError(f"ragbot serve not ready within {ready_s:.0f} s: {server.log_tail()}") from None
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def _wait_ready(server: Server) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            if server.process.returncode is not None:
                raise RuntimeError(f"ragbot serve exited ({server.process.returncode}): {server.log_tail()}")
            try:
                async with session.get(server.url + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
