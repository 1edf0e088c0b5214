"""Real storage servers for tests, started by the tests: Debian's `redis-server` and Azurite (the Azure
Storage emulator, installed under build/ by `make azurite`), each on a free loopback port with its data
in a temporary directory. Missing, they skip the test, naming what to install."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

import pytest

from tests.reliability.processes import HOST, free_port

REPO = Path(__file__).resolve().parents[1]
AZURITE = REPO / "build" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
START_S = 20.0
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""The emulator's published development-account key (the same in every Azurite)."""


class Server:
    """A server process on a loopback port that it keeps across restarts (as a real store would).

    Start and kill are blocking (a second at most): from a running event loop, call them through
    `asyncio.to_thread`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        log_path = self.directory / "server.log"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.directory, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command()[0]} exited at start-up: {log_path.read_text()[-2000:]}")
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.command()[0]} did not listen on {HOST}:{self.port} within {START_S} s")

    def kill(self) -> None:
        """`kill -9`: no clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), as a restart by an operator or an orchestrator does."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=START_S)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


class RedisServer(Server):
    """Append-only file fsynced on every write: a killed Redis keeps every acknowledged write."""

    @staticmethod
    def binary() -> str:
        found = shutil.which("redis-server")
        if found is None:
            pytest.skip("redis-server is not installed: `make redis` (Debian's redis-server)")
        return found

    def command(self) -> list[str]:
        return [
            self.binary(),
            "--bind", HOST,
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--protected-mode", "no",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"


class Azurite(Server):
    @staticmethod
    def binary() -> str:
        if not AZURITE.exists():
            pytest.skip(f"Azurite is not installed ({AZURITE}): `make azurite` (npm package azurite)")
        return str(AZURITE)

    def command(self) -> list[str]:
        return [
            self.binary(),
            "--blobHost", HOST,
            "--blobPort", str(self.port),
            "--location", str(self.directory),
            "--skipApiVersionCheck",
            "--disableTelemetry",  # it would report to Microsoft by default: nothing leaves this machine
            "--silent",
        ]  # fmt: skip

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://{HOST}:{self.port}/devstoreaccount1;"
        )
