"""Which botbuilder `Storage` holds thread memory and feedback (`RAGBOT_STORAGE`)."""

from __future__ import annotations

from botbuilder.core import MemoryStorage, Storage

from bot.settings import BotSettings
from bot.sqlite_storage import SqliteStorage
from rag.errors import ConfigError

STATE_FILE = "state.sqlite"


def build_storage(settings: BotSettings) -> Storage:
    """SQLite under `RAGBOT_DATA_DIR` by default; Cosmos DB or Blob storage through botbuilder-azure."""
    if settings.storage == "sqlite":
        return SqliteStorage(settings.data_dir / STATE_FILE, owner=True)
    if settings.storage == "memory":
        return MemoryStorage()
    try:
        import botbuilder.azure as azure  # optional: pip install 'ragbot[azure-storage]'
    except ImportError:
        raise ConfigError(
            f"RAGBOT_STORAGE={settings.storage} needs botbuilder-azure: pip install 'ragbot[azure-storage]'"
        ) from None
    if settings.storage == "cosmos":
        if not (settings.cosmos_endpoint and settings.cosmos_key):
            raise ConfigError("RAGBOT_STORAGE=cosmos needs RAGBOT_COSMOS_ENDPOINT and RAGBOT_COSMOS_KEY")
        config = azure.CosmosDbPartitionedConfig(
            cosmos_db_endpoint=settings.cosmos_endpoint,
            auth_key=settings.cosmos_key.get_secret_value(),
            database_id=settings.cosmos_database,
            container_id=settings.cosmos_container,
        )
        return azure.CosmosDbPartitionedStorage(config)
    if not settings.blob_connection_string:
        raise ConfigError("RAGBOT_STORAGE=blob needs RAGBOT_BLOB_CONNECTION_STRING")
    return azure.BlobStorage(
        azure.BlobStorageSettings(
            container_name=settings.blob_container,
            connection_string=settings.blob_connection_string.get_secret_value(),
        )
    )
