"""Fixtures of tests/azure: the loopback fake Azure OpenAI (settings from a clean environment:
`make_settings` in tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure_fake import FakeAzure

from ragbot.cli import main
from tests.loopback import serve


@pytest.fixture
async def fake_azure() -> Any:
    fake = FakeAzure()
    async with serve(fake.handle, method="POST") as fake.url:
        yield fake


@pytest.fixture
async def fake_endpoint() -> Any:
    """The fake answering every method (GET, DELETE, ... for `ragbot raw`, GET for image downloads)."""
    fake = FakeAzure()
    async with serve(fake.handle) as fake.url:
        yield fake


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Awaitable[tuple[int, str, str]]]:
    """Runs `ragbot ARGS` through the real entry point in a worker thread (it starts its own event loop,
    while the fake serves on the test's); returns (exit code, stdout, stderr)."""

    async def run(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
