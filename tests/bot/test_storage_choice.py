"""`RAGBOT_STORAGE`: SQLite by default, in memory on request, Azure stores only when fully configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from botbuilder.core import MemoryStorage

from bot.settings import BotSettings
from bot.sqlite_storage import SqliteStorage
from bot.storage import STATE_FILE, build_storage
from rag.errors import ConfigError


async def test_sqlite_under_the_data_dir_by_default(tmp_path: Path) -> None:
    storage = build_storage(BotSettings(_env_file=None, data_dir=tmp_path))
    assert isinstance(storage, SqliteStorage) and storage.path == tmp_path / STATE_FILE
    await storage.close()
    assert isinstance(build_storage(BotSettings(_env_file=None, storage="memory")), MemoryStorage)


@pytest.mark.parametrize("kind", ["cosmos", "blob"])
def test_azure_stores_need_their_settings_and_package(kind: str) -> None:
    with pytest.raises(ConfigError, match=f"RAGBOT_STORAGE={kind}"):
        build_storage(BotSettings(_env_file=None, storage=kind))
