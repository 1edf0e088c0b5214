"""Which store holds conversation state (`RAGBOT_STORAGE`), and the start-up check that it works."""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.settings import BotSettings
from bot.state.cache import CachedStore
from bot.state.memory import MemoryStore
from bot.state.sqlite import SqliteStore
from bot.state.store import StateStore, StoreUnavailable
from rag.errors import ConfigError

STATE_FILE = "state.sqlite"
SHARED = ("redis", "blob", "cosmos")


def build_store(settings: BotSettings) -> StateStore:
    """SQLite under `RAGBOT_DATA_DIR` by default (cached: this server is its only writer); Redis, Azure
    Blob storage or Azure Cosmos DB when several replicas share state (never cached)."""
    kind = settings.storage
    if kind == "sqlite":
        return CachedStore(SqliteStore(settings.data_dir / STATE_FILE, owner=True))
    if kind == "memory":
        return MemoryStore()
    if kind == "redis":
        if settings.redis_url is None:
            raise ConfigError("RAGBOT_STORAGE=redis needs RAGBOT_REDIS_URL (redis://host:6379/0)")
        from bot.state.redis import RedisStore

        return RedisStore(settings.redis_url.get_secret_value(), prefix=settings.redis_prefix)
    if kind == "blob":
        if settings.blob_connection_string is None and not settings.blob_account_url:
            raise ConfigError(
                "RAGBOT_STORAGE=blob needs RAGBOT_BLOB_ACCOUNT_URL (Entra ID, e.g. a managed identity) "
                "or RAGBOT_BLOB_CONNECTION_STRING"
            )
        from bot.state.blob import BlobStore

        if settings.blob_connection_string is not None:
            return BlobStore.from_connection_string(
                settings.blob_connection_string.get_secret_value(), settings.blob_container
            )
        assert settings.blob_account_url
        return BlobStore.with_entra_id(settings.blob_account_url, settings.blob_container)
    if not settings.cosmos_endpoint:
        raise ConfigError(
            "RAGBOT_STORAGE=cosmos needs RAGBOT_COSMOS_ENDPOINT (and RAGBOT_COSMOS_KEY or Entra ID)"
        )
    from bot.state.cosmos import CosmosStore

    key = settings.cosmos_key.get_secret_value() if settings.cosmos_key else None
    return CosmosStore(settings.cosmos_endpoint, key, settings.cosmos_database, settings.cosmos_container)


def describe(settings: BotSettings) -> str:
    """Where state lives and who may share it, for `ragbot config` (no secret, no connection made)."""
    kind = settings.storage
    if kind == "sqlite":
        return f"sqlite {settings.data_dir / STATE_FILE} (one server; replicas need redis, blob or cosmos)"
    if kind == "memory":
        return "memory (one server, lost on restart)"
    if kind == "redis":
        where = urlsplit(settings.redis_url.get_secret_value()).hostname if settings.redis_url else None
        return f"redis {where or '(RAGBOT_REDIS_URL missing)'} (shared by replicas)"
    if kind == "blob":
        if settings.blob_connection_string is not None:
            how = "connection string"
        else:
            how = f"{settings.blob_account_url or '(RAGBOT_BLOB_ACCOUNT_URL missing)'}, Entra ID"
        return f"blob container {settings.blob_container} ({how}; shared by replicas)"
    how = "key" if settings.cosmos_key else "Entra ID"
    return (
        f"cosmos {settings.cosmos_endpoint or '(RAGBOT_COSMOS_ENDPOINT missing)'} "
        f"{settings.cosmos_database}/{settings.cosmos_container} ({how}; shared by replicas)"
    )


async def open_store(store: StateStore, settings: BotSettings) -> None:
    """Connect at start-up; a store that cannot be used is a configuration error naming what to fix."""
    try:
        await store.open()
    except StoreUnavailable as exc:
        if settings.storage == "sqlite":
            raise ConfigError(
                f"conversation memory cannot be kept in {settings.data_dir.resolve()}: {exc} "
                "(make the directory writable, point RAGBOT_DATA_DIR elsewhere, or keep memory in a "
                "shared store with RAGBOT_STORAGE=redis, blob or cosmos)"
            ) from None
        raise ConfigError(f"RAGBOT_STORAGE={settings.storage}: cannot use {store.name}: {exc}") from None
