"""Conversation state in Azure Cosmos DB for NoSQL (azure-cosmos, asyncio), shared by every replica.

One item per key, `{"id": <key as a Cosmos id>, "doc": <JSON text>}`, in a container partitioned on
`/id`, so every read and write is a point operation. The first write of a key is a create (409 if it
exists), every later one a replace with `If-Match: <_etag>` (412 if another replica wrote first).
The database and container are provisioned with the account (a data-plane identity cannot create
them): a missing one is a start-up error that says so. Signed in with an account key or, without
one, Entra ID (`DefaultAzureCredential`, given the "Cosmos DB Built-in Data Contributor" role).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.cosmos.aio import CosmosClient
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from bot.state import keys
from bot.state.azure_calls import azure_call
from bot.state.rates import shared_take
from bot.state.store import Conflict, Stored, StoreUnavailable, open_problem

T = TypeVar("T")

SCAN_QUERY = "SELECT c.id, c.doc FROM c WHERE STARTSWITH(c.id, @prefix)"
_EXPECTED = (CosmosAccessConditionFailedError, CosmosResourceExistsError, CosmosResourceNotFoundError)


class CosmosStore:
    def __init__(self, endpoint: str, key: str | None, database: str, container: str) -> None:
        self._credential: Any = None
        if key is None:
            from azure.identity.aio import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        self._client = CosmosClient(
            endpoint, credential=key or self._credential, connection_timeout=5, retry_total=2
        )
        self._container = self._client.get_database_client(database).get_container_client(container)
        self._where = f"{endpoint.rstrip('/')}/dbs/{database}/colls/{container}"

    @property
    def name(self) -> str:
        return f"cosmos ({self._where})"

    async def _call(self, op: Awaitable[T]) -> T:
        return await azure_call(op, _EXPECTED)

    async def open(self) -> None:
        try:
            await self._call(self._container.read())
        except CosmosResourceNotFoundError:
            raise StoreUnavailable(
                f"{self._where} does not exist: create the database and the container (partition key /id)"
            ) from None

    async def read(self, key: str) -> Stored | None:
        name = keys.encode(key)
        try:
            item = await self._call(self._container.read_item(item=name, partition_key=name))
        except CosmosResourceNotFoundError:
            return None
        return Stored(item["doc"], item["_etag"])

    async def create(self, key: str, doc: str) -> str:
        try:
            item = await self._call(self._container.create_item({"id": keys.encode(key), "doc": doc}))
        except CosmosResourceExistsError:
            raise Conflict(f"{key!r} exists already") from None
        return str(item["_etag"])

    async def replace(self, key: str, doc: str, etag: str) -> str:
        name = keys.encode(key)
        try:
            item = await self._call(
                self._container.replace_item(
                    item=name,
                    body={"id": name, "doc": doc},
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            )
        except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            raise Conflict(f"{key!r} changed since it was read") from None
        return str(item["_etag"])

    async def put(self, key: str, doc: str) -> str:
        item = await self._call(self._container.upsert_item({"id": keys.encode(key), "doc": doc}))
        return str(item["_etag"])

    async def delete(self, key: str) -> None:
        name = keys.encode(key)
        with contextlib.suppress(CosmosResourceNotFoundError):
            await self._call(self._container.delete_item(item=name, partition_key=name))

    async def scan(self, prefix: str) -> list[tuple[str, str]]:
        async def query() -> list[tuple[str, str]]:
            items = self._container.query_items(
                SCAN_QUERY, parameters=[{"name": "@prefix", "value": keys.encode(prefix)}]
            )
            return [(keys.decode(item["id"]), item["doc"]) async for item in items]

        return sorted(await self._call(query()))

    async def take(self, key: str, limit: int, window_s: float) -> float:
        return await shared_take(self, key, limit, window_s)

    async def problem(self) -> str | None:
        return await open_problem(self.open)

    async def aclose(self) -> None:
        await self._client.close()
        if self._credential is not None:
            await self._credential.close()
