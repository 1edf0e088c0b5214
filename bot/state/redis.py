"""Conversation state in Redis (redis-py asyncio), shared by every replica.

A document is a hash `{d: doc, e: etag}` under `<prefix><key>`. Conditional writes are Lua scripts,
which Redis runs atomically: create writes only if the key is absent, replace only if the stored
eTag is the one read. Rate limits are a sorted set of event times per key (Redis' own clock, so
replicas agree), trimmed to the window by the same script that counts.

Durability is Redis' own: run it with `appendonly yes` and `appendfsync always` for no acknowledged
turn lost when Redis itself is killed (`everysec` may lose the last second).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff
from redis.exceptions import RedisError

from bot.state.store import Conflict, Stored, StoreUnavailable, open_problem

T = TypeVar("T")

CONNECT_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 5.0
SCAN_BATCH = 500

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'e', ARGV[2])
return 1
"""
_REPLACE = """
if redis.call('HGET', KEYS[1], 'e') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'e', ARGV[3])
return 1
"""
_TAKE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window_ms = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window_ms - now_ms)
end
redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window_ms)
return 0
"""


def _glob_escaped(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStore:
    def __init__(self, url: str, *, prefix: str = "ragbot:") -> None:
        parts = urlsplit(url)
        self._where = (
            f"{parts.hostname or parts.path}:{parts.port or 6379}{parts.path if parts.hostname else ''}"
        )
        self.prefix = prefix
        self._client: redis.Redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            # One quick retry reconnects a pooled connection that a Redis restart broke; a Redis that
            # stays down fails the turn at once (a polite reply), not after a long backoff.
            retry=Retry(ConstantBackoff(0.05), 1),
        )
        self._create = self._client.register_script(_CREATE)
        self._replace = self._client.register_script(_REPLACE)
        self._take = self._client.register_script(_TAKE)

    @property
    def name(self) -> str:
        return f"redis ({self._where})"

    async def _call(self, op: Awaitable[T]) -> T:
        try:
            return await op
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None

    async def open(self) -> None:
        await self._call(self._client.ping())

    async def read(self, key: str) -> Stored | None:
        doc, etag = await self._call(self._client.hmget(self.prefix + key, ["d", "e"]))
        return None if doc is None else Stored(str(doc), str(etag))

    async def create(self, key: str, doc: str) -> str:
        etag = uuid.uuid4().hex
        if not await self._call(self._create(keys=[self.prefix + key], args=[doc, etag])):
            raise Conflict(f"{key!r} exists already")
        return etag

    async def replace(self, key: str, doc: str, etag: str) -> str:
        new = uuid.uuid4().hex
        if not await self._call(self._replace(keys=[self.prefix + key], args=[doc, etag, new])):
            raise Conflict(f"{key!r} changed since it was read")
        return new

    async def put(self, key: str, doc: str) -> str:
        etag = uuid.uuid4().hex
        await self._call(self._client.hset(self.prefix + key, mapping={"d": doc, "e": etag}))
        return etag

    async def delete(self, key: str) -> None:
        await self._call(self._client.delete(self.prefix + key))

    async def scan(self, prefix: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        pattern = _glob_escaped(self.prefix + prefix) + "*"
        cursor: Any = 0
        while True:
            cursor, keys = await self._call(self._client.scan(cursor, match=pattern, count=SCAN_BATCH))
            if keys:
                pipe = self._client.pipeline(transaction=False)
                for name in keys:
                    pipe.hget(name, "d")
                docs = await self._call(pipe.execute())
                skip = len(self.prefix)
                found += [(str(n)[skip:], str(d)) for n, d in zip(keys, docs, strict=True) if d]
            if not cursor:
                return sorted(set(found))

    async def take(self, key: str, limit: int, window_s: float) -> float:
        wait_ms = await self._call(
            self._take(keys=[self.prefix + key], args=[limit, int(window_s * 1000), uuid.uuid4().hex])
        )
        return int(wait_ms) / 1000

    async def problem(self) -> str | None:
        return await open_problem(self.open)

    async def aclose(self) -> None:
        await self._client.aclose()
