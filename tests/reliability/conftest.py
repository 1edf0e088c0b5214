"""Fixtures of the reliability suite: the bot suite's app-on-loopback fixtures, a clean environment and
the misbehaving fake Azure OpenAI of `tests.reliability.upstream`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.bot.conftest import bot_host, connector, make_bot  # noqa: F401  (fixtures shared with the bot suite)
from tests.loopback import serve
from tests.reliability.upstream import Upstream


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No Azure, bot or ragbot settings leak in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith(("AZURE_", "RAGBOT_", "MicrosoftApp", "MICROSOFT_APP", "DIRECT_LINE")):
            monkeypatch.delenv(name)
    yield


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    fake = Upstream()
    async with serve(fake.handle, method="POST") as fake.url:
        yield fake
