"""The state seam: conversation memory, feedback and rate limits on SQLite, Redis, Blob or Cosmos DB."""

from bot.state.choice import STATE_FILE, build_store, describe, open_store
from bot.state.store import Conflict, StateError, StateStore, Stored, StoreUnavailable

__all__ = [
    "STATE_FILE",
    "Conflict",
    "StateError",
    "StateStore",
    "StoreUnavailable",
    "Stored",
    "build_store",
    "describe",
    "open_store",
]
