"""Fixtures of tests/azure: the loopback fake Azure OpenAI and settings read from a clean environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure_fake import FakeAzure

from rag.settings import Settings, load_settings
from tests.loopback import serve


@pytest.fixture
async def fake_azure() -> Any:
    fake = FakeAzure()
    async with serve(fake.handle, method="POST") as fake.url:
        yield fake


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    """No AZURE_*/RAGBOT_* variables from the outer environment, and no `.env` in the working dir."""
    for name in list(os.environ):
        if name.startswith(("AZURE_", "RAGBOT_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def make_settings(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Settings read from the given environment variables, exactly as the service reads them."""

    def make(env: dict[str, str]) -> Settings:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return load_settings(env_file=None)

    return make
