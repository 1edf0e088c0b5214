"""Fixtures of tests/azure: the loopback fake Azure OpenAI (settings from a clean environment:
`make_settings` in tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from azure_fake import FakeAzure

from tests.loopback import serve


@pytest.fixture
async def fake_azure() -> Any:
    fake = FakeAzure()
    async with serve(fake.handle, method="POST") as fake.url:
        yield fake
