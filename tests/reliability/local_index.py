"""A real `ragbot serve` answering from a local index, and the real `ragbot index` command, for the tests
of the embedded index under operators' mistakes (rebuilds, kills, read-only data directories)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import pytest

from rag.contract import REFUSAL
from tests.bot.fakes import FakeConnector, activity
from tests.commandline import OUTER_SETTINGS
from tests.reliability.processes import free_port, wait_healthy

REPO = Path(__file__).resolve().parents[2]
HELPDESK = REPO / "samples" / "helpdesk"
QUESTION = "How do I connect to the VPN on a Mac?"
ARTICLES = (
    "vpn-macos.md",
    "vpn-error-codes.md",
    "printer-add-mac.md",
    "mfa-new-phone.md",
    "onedrive-sync.md",
)


def corpus(folder: Path) -> Path:
    """A few help-desk articles, the VPN one among them."""
    (folder / "it").mkdir(parents=True)
    for name in ARTICLES:
        shutil.copy(HELPDESK / "it" / name, folder / "it" / name)
    return folder


def environment(data_dir: Path, **settings: str) -> dict[str, str]:
    """The outer environment minus any settings, plus a data directory and memory kept in-process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(OUTER_SETTINGS)}
    return {
        **base,
        "PYTHONPATH": str(REPO),
        "RAGBOT_DATA_DIR": str(data_dir),
        "RAGBOT_STORAGE": "memory",
        "RAGBOT_STREAMING": "false",
        "RAGBOT_USER_TURNS_PER_MINUTE": "10000",
        **settings,
    }


def index_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ragbot", "index", *args]


def index(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        index_command(*args),
        env=environment(data_dir),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


class Server:
    """`ragbot serve` in a child process; `ask` posts a turn and returns the bot's reply text."""

    def __init__(self, url: str, connector: FakeConnector, service_url: str) -> None:
        self.url, self.connector, self.service_url = url, connector, service_url
        self.asked = 0

    async def ask(self, session: aiohttp.ClientSession, text: str = QUESTION) -> str:
        self.asked += 1
        turn = activity(
            self.service_url,
            text,
            channel="emulator",
            conversation_id=f"c-{self.asked}",  # a new thread each time: every answer stands alone
            conversation_type=None,
        )
        async with session.post(f"{self.url}/api/messages", json=turn) as response:
            assert response.status == 200, await response.text()
        replies = [r.text for r in self.connector.in_conversation(f"c-{self.asked}", "message")]
        assert replies, "the bot sent no reply"
        return replies[-1]


def answered(reply: str) -> bool:
    """A grounded answer with a source, not the refusal or an apology."""
    return REFUSAL not in reply and "[1]" in reply


@asynccontextmanager
async def serving(data_dir: Path, log: Path, aiohttp_server: object) -> AsyncIterator[Server]:
    connector = FakeConnector()
    fake = await aiohttp_server(connector.app)  # type: ignore[operator]
    service_url = str(fake.make_url("")).rstrip("/") + "/"
    port = free_port()
    with log.open("wb") as out:  # the child keeps its own descriptor
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "ragbot", "serve", "--host", "127.0.0.1", "--port", str(port)),
            cwd=log.parent,
            env=environment(data_dir),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(process, url)
        yield Server(url, connector, service_url)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make `folder` and its files read-only even for root (the tests run as root, where permission bits
    stop nothing): the immutable attribute, which needs CAP_LINUX_IMMUTABLE and ext2/3/4, xfs or btrfs.
    Skips when that is not available here."""
    paths = [folder, *sorted(folder.iterdir())]
    done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, text=True, check=False)
    try:
        if done.returncode != 0:
            pytest.skip(f"cannot make a folder read-only here (chattr +i: {done.stderr.strip()})")
        try:
            (folder / "probe").touch()
        except PermissionError:
            pass
        else:
            pytest.skip("chattr +i did not make the folder read-only")
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True, check=False)
