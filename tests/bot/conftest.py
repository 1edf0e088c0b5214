"""Fixtures: the real bot app on loopback, a fake connector receiving its replies, a fake answerer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.handoff import HandOff
from bot.identity import Identities
from bot.settings import BotSettings
from bot.state import StateStore
from bot.turns import TurnTiming
from tests.bot.fakes import FakeAnswerer, FakeConnector

STREAM_INTERVAL = 0.05
TYPING_DELAY = 0.03
TYPING_PERIOD = 0.2
SLOW = 0.1
"""An answer delay long enough for a typing indicator."""


@dataclass
class Bot:
    client: TestClient[Any, Any]
    connector: FakeConnector
    answerer: FakeAnswerer
    service_url: str
    settings: BotSettings

    async def post(self, activity: dict[str, Any], **kwargs: Any) -> ClientResponse:
        return await self.client.post("/api/messages", json=activity, **kwargs)

    async def ask(self, activity: dict[str, Any]) -> ClientResponse:
        response = await self.post(activity)
        assert response.status == 200, await response.text()
        return response


MakeBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def connector(aiohttp_server: Any) -> tuple[FakeConnector, str]:
    fake = FakeConnector()
    server = await aiohttp_server(fake.app)
    return fake, str(server.make_url("")).rstrip("/") + "/"


@pytest.fixture(params=["botbuilder", "agents"])
def bot_host(request: pytest.FixtureRequest) -> str:
    """Every app the suites build runs once on each host (`RAGBOT_BOT_HOST`)."""
    return str(request.param)


@pytest.fixture
def make_bot(
    aiohttp_client: Any, connector: tuple[FakeConnector, str], tmp_path: Path, bot_host: str
) -> MakeBot:
    """Build the app on `bot_host` with settings overrides; the answerer and storage can be swapped."""

    async def make(
        answerer: FakeAnswerer | None = None,
        *,
        storage: StateStore | None = None,
        timing: TurnTiming | None = None,
        auth_overrides: dict[str, Any] | None = None,
        handoff: HandOff | None = None,
        identities: Identities | None = None,
        **overrides: Any,
    ) -> Bot:
        fake, service_url = connector
        settings = BotSettings(_env_file=None, data_dir=tmp_path, bot_host=bot_host, **overrides)
        answerer = answerer or FakeAnswerer()
        app = create_app(
            settings,
            answerer,
            storage=storage,
            timing=timing
            or TurnTiming(
                stream_interval=STREAM_INTERVAL, typing_delay=TYPING_DELAY, typing_period=TYPING_PERIOD
            ),
            auth_overrides=auth_overrides,
            handoff=handoff,
            identities=identities,
        )
        client = await aiohttp_client(app)
        return Bot(client, fake, answerer, service_url, settings)

    return make


@pytest.fixture
async def bot(make_bot: MakeBot) -> Bot:
    return await make_bot()
