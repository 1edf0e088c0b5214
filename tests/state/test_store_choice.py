"""`RAGBOT_STORAGE`: SQLite by default (cached, it has one writer), in memory on request, the shared
stores only when configured, and a start-up error that says what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.feedback import FeedbackRecord, save_feedback
from bot.settings import BotSettings
from bot.state import STATE_FILE, build_store, open_store
from bot.state.cache import CachedStore
from bot.state.memory import MemoryStore
from bot.state.redis import RedisStore
from bot.state.sqlite import SqliteStore
from rag.errors import ConfigError
from tests.commandline import run_ragbot
from tests.servers import RedisServer


async def test_sqlite_under_the_data_dir_by_default(tmp_path: Path) -> None:
    store = build_store(BotSettings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    assert isinstance(store, CachedStore) and isinstance(store.inner, SqliteStore)
    assert store.inner.path == tmp_path / STATE_FILE and store.inner.owner
    await store.aclose()
    assert isinstance(build_store(BotSettings(_env_file=None, storage="memory")), MemoryStore)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kind", "needs"),
    [
        ("redis", "RAGBOT_REDIS_URL"),
        ("blob", "RAGBOT_BLOB_ACCOUNT_URL"),
        ("cosmos", "RAGBOT_COSMOS_ENDPOINT"),
    ],
)
def test_shared_stores_need_their_settings(kind: str, needs: str) -> None:
    with pytest.raises(ConfigError, match=f"RAGBOT_STORAGE={kind} needs {needs}"):
        build_store(BotSettings(_env_file=None, storage=kind))  # type: ignore[call-arg]


async def test_a_second_server_on_the_same_data_dir_is_told_why(tmp_path: Path) -> None:
    settings = BotSettings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    first, second = build_store(settings), build_store(settings)
    await open_store(first, settings)
    with pytest.raises(ConfigError, match="in use by another ragbot server"):
        await open_store(second, settings)
    await first.aclose()
    await second.aclose()


def test_ragbot_config_shows_the_store_without_its_secrets(tmp_path: Path) -> None:
    env = {"RAGBOT_STORAGE": "redis", "RAGBOT_REDIS_URL": "redis://:hunter2@cache.internal:6380/1"}
    result = run_ragbot("config", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "conversation state: redis cache.internal (shared by replicas)" in result.stdout
    assert "hunter2" not in result.stdout
    blob = run_ragbot("config", cwd=tmp_path, env={"RAGBOT_STORAGE": "blob"})
    assert "conversation state: blob container ragbot-state ((RAGBOT_BLOB_ACCOUNT_URL missing)" in blob.stdout


async def test_ragbot_feedback_lists_ratings_from_a_shared_store(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    store = RedisStore(redis_server.url, prefix="fb-test:")
    record = FeedbackRecord(
        reply_to_id="r1", reaction="dislike", comment="outdated", channel_id="msteams",
        conversation_id="c", user_id="u", question="How do I use the VPN?",
    )  # fmt: skip
    await save_feedback(store, record)
    await store.aclose()
    env = {"RAGBOT_STORAGE": "redis", "RAGBOT_REDIS_URL": redis_server.url, "RAGBOT_REDIS_PREFIX": "fb-test:"}
    listed = run_ragbot("feedback", "--format", "json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["comment"] == "outdated" and row["question"] == "How do I use the VPN?"
