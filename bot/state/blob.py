"""Conversation state in Azure Blob Storage (azure-storage-blob, asyncio), shared by every replica.

One block blob per key in one container. The first write of a key is a conditional upload with
`If-None-Match: *` (409 if it exists), every later one carries `If-Match: <eTag>` (412 if another
replica wrote first): Azure's own optimistic concurrency, nothing to lock. Signed in with Entra ID
(`DefaultAzureCredential`: the app's managed identity in Azure, `az login` on a laptop) or a
connection string (Azurite, or an account key where shared keys are allowed).

Requests fail fast (short connect/read timeouts, two quick retries) so a turn facing an unreachable
store gets a polite reply within seconds instead of the SDK's default minute-long backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob.aio import ContainerClient, LinearRetry

from bot.state import keys
from bot.state.azure_calls import azure_call
from bot.state.rates import shared_take
from bot.state.store import Conflict, Stored, StoreUnavailable

T = TypeVar("T")

SCAN_READS = 16
"""Blobs downloaded at once by a prefix scan."""


def _client_options() -> dict[str, Any]:
    return {
        # two retries 0.2 s apart (the SDK's default waits 15 s, then 45 s); the SDK takes seconds as float
        "retry_policy": LinearRetry(backoff=0.2, random_jitter_range=0.1, retry_total=2),  # type: ignore[arg-type]
        "connection_timeout": 3,
        "read_timeout": 10,
    }


class BlobStore:
    def __init__(self, container: ContainerClient, credential: Any = None) -> None:
        self._container = container
        self._credential = credential  # closed with the store (an Entra ID credential holds a session)

    @classmethod
    def from_connection_string(cls, connection_string: str, container: str) -> BlobStore:
        return cls(ContainerClient.from_connection_string(connection_string, container, **_client_options()))

    @classmethod
    def with_entra_id(cls, account_url: str, container: str) -> BlobStore:
        from azure.identity.aio import DefaultAzureCredential

        credential = DefaultAzureCredential()
        return cls(
            ContainerClient(account_url, container, credential=credential, **_client_options()), credential
        )

    @property
    def name(self) -> str:
        return f"blob ({self._container.url})"

    async def _call(self, op: Awaitable[T]) -> T:
        return await azure_call(op, (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError))

    async def open(self) -> None:
        """Create the container if it is missing (the Bicep template creates it in Azure)."""
        try:
            await self._call(self._container.get_container_properties())
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):  # another replica made it meanwhile
                await self._call(self._container.create_container())

    async def read(self, key: str) -> Stored | None:
        blob = self._container.get_blob_client(keys.encode(key))
        try:
            download = await self._call(blob.download_blob())
            data = await self._call(download.readall())
        except ResourceNotFoundError:
            return None
        return Stored(data.decode(), str(download.properties.etag))

    async def create(self, key: str, doc: str) -> str:
        blob = self._container.get_blob_client(keys.encode(key))
        try:
            result = await self._call(blob.upload_blob(doc.encode(), overwrite=False))
        except ResourceExistsError:
            raise Conflict(f"{key!r} exists already") from None
        return str(result["etag"])

    async def replace(self, key: str, doc: str, etag: str) -> str:
        blob = self._container.get_blob_client(keys.encode(key))
        try:
            result = await self._call(
                blob.upload_blob(
                    doc.encode(), overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified
                )
            )
        except (ResourceModifiedError, ResourceNotFoundError, ResourceExistsError):
            raise Conflict(f"{key!r} changed since it was read") from None
        return str(result["etag"])

    async def put(self, key: str, doc: str) -> str:
        blob = self._container.get_blob_client(keys.encode(key))
        result = await self._call(blob.upload_blob(doc.encode(), overwrite=True))
        return str(result["etag"])

    async def delete(self, key: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            await self._call(self._container.delete_blob(keys.encode(key)))

    async def scan(self, prefix: str) -> list[tuple[str, str]]:
        async def names() -> list[str]:
            listing = self._container.list_blobs(name_starts_with=keys.encode(prefix))
            return [blob.name async for blob in listing]

        found = await self._call(names())
        limit = asyncio.Semaphore(SCAN_READS)

        async def one(name: str) -> tuple[str, Stored | None]:
            async with limit:
                key = keys.decode(name)
                return key, await self.read(key)

        read = await asyncio.gather(*(one(name) for name in found))
        return sorted((key, stored.doc) for key, stored in read if stored is not None)

    async def take(self, key: str, limit: int, window_s: float) -> float:
        return await shared_take(self, key, limit, window_s)

    async def problem(self) -> str | None:
        try:
            await self._call(self._container.get_container_properties())
        except (StoreUnavailable, ResourceNotFoundError) as exc:
            return str(exc) or "the container is missing"
        return None

    async def aclose(self) -> None:
        await self._container.close()
        if self._credential is not None:
            await self._credential.close()
