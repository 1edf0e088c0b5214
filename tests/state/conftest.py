"""Fixtures of the state suite: every store behind the seam, each on a real server where one exists."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.state import StateStore
from bot.state.cache import CachedStore
from bot.state.memory import MemoryStore
from bot.state.sqlite import SqliteStore

KINDS = ["memory", "sqlite", "cached-sqlite"]


async def make_store(kind: str, tmp_path: Path) -> StateStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SqliteStore(tmp_path / "state.sqlite", owner=True)
    if kind == "cached-sqlite":
        return CachedStore(SqliteStore(tmp_path / "state.sqlite", owner=True))
    raise AssertionError(kind)


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    made = await make_store(request.param, tmp_path)
    await made.open()
    yield made
    await made.aclose()
