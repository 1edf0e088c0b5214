"""Azure AI Search as an index target, through azure-search-documents (async clients).

How a file's content hash is kept: on its first chunk (`chunk_id` '0'), which is written last, only after
the file's other chunks are uploaded and its stale chunks deleted. So a file whose upload failed half-way
still shows its old hash (or none) and is redone on the next run, and listing the hashes of every file is
one filtered query (`chunk_id eq '0'`). A file that yields no chunks is not remembered, and is re-read
(but not rewritten) on every run. Every chunk carries the file's root (`source_root`, the absolute folder
its filepath is relative to); a file indexed before that field existed gets it on its first chunk when a
run recognises it (a merge, nothing re-uploaded).

Uploads go in batches within the service limits (1000 documents, 16 MB a request), several in flight;
a request answered 429/503 (or lost) and a document answered 409/422/429/503 are retried with backoff,
and every other per-document failure is reported with the service's reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.search.documents.aio import SearchClient
from azure.search.documents.indexes.aio import SearchIndexClient
from azure.search.documents.models import IndexDocumentsBatch

from indexing.azure_schema import build_index, filepath_field
from indexing.targets import FileWrite, Indexed, Tick, WriteOutcome
from rag.azure.retry import backoff
from rag.azure.security import odata_string
from rag.documents import Chunk
from rag.errors import AuthError, DataSourceError, RagError, UpstreamUnavailable
from rag.index_spec import IndexSpec
from rag.local.store import FileChange

log = logging.getLogger(__name__)

MAX_BATCH_DOCS = 1000  # service limit per indexing request
MAX_BATCH_BYTES = 15 * 1024 * 1024  # under the 16 MB request limit, leaving room for the envelope
PAGE = 1000  # search results per listing request (the service's maximum `top`)
RETRYABLE_DOCUMENT = frozenset({409, 422, 429, 503})
# A refused request: azure-core's retry policy already retries 503 (and network errors) for POST, not 429.
RETRYABLE_REQUEST = frozenset({429})

T = TypeVar("T")


@dataclass(frozen=True)
class Action:
    kind: str  # "upload", "merge" or "delete"
    filepath: str
    document: dict[str, Any]
    size: int


class AzureSearchTarget:
    """Writes chunks to the index `spec` describes, creating or updating the index first."""

    name = "azure"

    def __init__(
        self,
        spec: IndexSpec,
        endpoint: str,
        credential: Any,
        *,
        vectorizer_key: str | None = None,
        in_flight: int = 4,
        retries: int = 6,
        retry_base: float = 0.5,
        batch_docs: int = MAX_BATCH_DOCS,
        batch_bytes: int = MAX_BATCH_BYTES,
        page_size: int = PAGE,
    ) -> None:
        self.spec = spec
        self.filepath = filepath_field(spec)
        self.dimensions: int | None = spec.dimensions if spec.vector_field else None
        self.vectorizer_key = vectorizer_key
        self.retries, self.retry_base = retries, retry_base
        self.batch_docs, self.batch_bytes, self.page_size = batch_docs, batch_bytes, page_size
        self._gate = asyncio.Semaphore(in_flight)
        sdk: dict[str, Any] = {"retry_backoff_factor": retry_base, "retry_total": retries}
        self._credential = credential
        self._indexes = SearchIndexClient(endpoint, credential, **sdk)
        self._docs = SearchClient(endpoint, spec.name, credential, **sdk)
        self._hashes: dict[str, str] = {}
        self._first_chunks: dict[str, str] = {}  # filepath -> key of its first chunk (where the hash is)

    @classmethod
    def with_key(cls, spec: IndexSpec, endpoint: str, key: str, **options: Any) -> AzureSearchTarget:
        return cls(spec, endpoint, AzureKeyCredential(key), **options)

    # -- index ---------------------------------------------------------------------------------------

    async def prepare(self, *, recreate: bool, dry_run: bool) -> None:
        if dry_run:
            return
        index = build_index(self.spec, vectorizer_key=self.vectorizer_key)
        if recreate:
            try:
                await self._call(self._indexes.delete_index(self.spec.name))
                log.info("deleted index %s", self.spec.name)
            except ResourceNotFoundError:
                pass
        try:
            await self._call(self._indexes.create_or_update_index(index))
        except HttpResponseError as exc:
            if exc.status_code == 400:
                raise DataSourceError(
                    f"index {self.spec.name!r} cannot be updated to the ragbot schema ({_reason(exc)}); "
                    "run `ragbot index --recreate` to rebuild it"
                ) from None
            raise
        log.info("index %s is ready", self.spec.name)

    async def indexed(self) -> dict[str, Indexed]:
        spec = self.spec
        fields = [spec.key_field, self.filepath, spec.hash_field, spec.root_field]
        try:
            try:
                rows = await self._scan(f"{spec.chunk_id_field} eq '0'", self.filepath, fields)
            except HttpResponseError as exc:
                if exc.status_code != 400:
                    raise
                # an index made before the root field (a dry run does not update the schema)
                rows = await self._scan(f"{spec.chunk_id_field} eq '0'", self.filepath, fields[:-1])
        except ResourceNotFoundError:
            rows = []  # no index yet: every file is new
        self._hashes = {row[self.filepath]: row.get(spec.hash_field) or "" for row in rows}
        self._first_chunks = {row[self.filepath]: row[spec.key_field] for row in rows}
        return {
            row[self.filepath]: Indexed(row.get(spec.hash_field) or "", row.get(spec.root_field))
            for row in rows
        }

    async def set_roots(self, roots: dict[str, str]) -> None:
        actions = [
            Action(
                "merge", path, {self.spec.key_field: self._first_chunks[path], self.spec.root_field: root}, 0
            )
            for path, root in roots.items()
            if path in self._first_chunks
        ]
        for path, reason in (await self._run(actions, lambda n: None)).items():
            log.warning("could not record the folder of %s: %s", path, reason)

    # -- writes --------------------------------------------------------------------------------------

    async def write(self, files: Sequence[FileWrite], tick: Tick) -> WriteOutcome:
        outcome = WriteOutcome()
        existing = await self._existing_ids(
            [f.filepath for f in files if f.filepath in self._hashes], outcome
        )
        for item in files:
            unkept = self._unkept_access(item.chunks)
            if unkept:
                outcome.errors.setdefault(item.filepath, unkept)
        body: list[Action] = []
        markers: list[Action] = []
        for item in files:
            if item.filepath in outcome.errors:
                continue
            for index, chunk in enumerate(item.chunks):
                vector = item.vectors[index] if item.vectors is not None else None
                action = self._upload(chunk, vector, item.root)
                (markers if chunk.chunk_id == "0" else body).append(action)
        failed = await self._run(body, tick)
        stale = [
            Action("delete", f.filepath, {self.spec.key_field: key}, 0)
            for f in files
            if f.filepath not in failed and f.filepath not in outcome.errors
            for key in sorted(existing.get(f.filepath, set()) - {c.id for c in f.chunks})
        ]
        failed.update(await self._run(stale, lambda n: None))
        failed.update(await self._run([m for m in markers if m.filepath not in failed], tick))
        outcome.errors.update(failed)
        for item in files:
            if item.filepath in outcome.errors:
                continue
            new, old = {c.id for c in item.chunks}, existing.get(item.filepath, set())
            outcome.changes[item.filepath] = FileChange(
                added=len(new - old), updated=len(new & old), deleted=len(old - new)
            )
            self._hashes[item.filepath] = item.content_hash
        return outcome

    async def delete(self, filepaths: Sequence[str]) -> WriteOutcome:
        outcome = WriteOutcome()
        existing = await self._existing_ids(list(filepaths), outcome)
        actions = [
            Action("delete", path, {self.spec.key_field: key}, 0)
            for path in filepaths
            for key in sorted(existing.get(path, set()))
        ]
        outcome.errors.update(await self._run(actions, lambda n: None))
        for path in filepaths:
            if path not in outcome.errors:
                outcome.changes[path] = FileChange(deleted=len(existing.get(path, set())))
                self._hashes.pop(path, None)
        return outcome

    async def finish(self) -> None:
        """Nothing to swap: writes went to the live index (`--recreate` deleted it up front)."""

    async def aclose(self) -> None:
        await self._docs.close()
        await self._indexes.close()
        close = getattr(self._credential, "close", None)  # an azure-identity credential holds a session
        if close is not None:
            await close()

    # -- helpers -------------------------------------------------------------------------------------

    def _unkept_access(self, chunks: Sequence[Chunk]) -> str | None:
        """Why a file cannot be written: it names groups or users the index has no field for, so the index
        would show it to everyone. None when it can be written."""
        missing = [
            f"it names {what} but AZURE_SEARCH_PERMITTED_{what.upper()}_COLUMN is unset"
            for what, named, field in (
                ("groups", any(c.group_ids for c in chunks), self.spec.groups_field),
                ("users", any(c.user_ids for c in chunks), self.spec.users_field),
            )
            if named and not field
        ]
        if not missing:
            return None
        return f"{' and '.join(missing)}: not indexed, as the index could not keep it from anyone"

    def _upload(self, chunk: Chunk, vector: Any, root: str | None) -> Action:
        spec = self.spec
        doc: dict[str, Any] = {
            spec.key_field: chunk.id,
            spec.content_field: chunk.content,
            self.filepath: chunk.filepath,
            spec.chunk_id_field: chunk.chunk_id,
            spec.page_field: chunk.page,
            spec.last_modified_field: chunk.last_modified,
            spec.hash_field: chunk.content_hash,
            spec.root_field: root,
        }
        if spec.title_field:
            doc[spec.title_field] = chunk.title
        if spec.url_field:
            doc[spec.url_field] = chunk.url
        if spec.groups_field:
            doc[spec.groups_field] = chunk.group_ids
        if spec.users_field:
            doc[spec.users_field] = chunk.user_ids
        if spec.vector_field and vector is not None:
            doc[spec.vector_field] = [float(x) for x in vector]
        return Action("upload", chunk.filepath, doc, len(json.dumps(doc)))

    async def _existing_ids(self, filepaths: list[str], outcome: WriteOutcome) -> dict[str, set[str]]:
        """Chunk ids currently in the index for each file (one listing query per file, several at once)."""
        spec = self.spec

        async def one(path: str) -> tuple[str, set[str] | str]:
            try:
                rows = await self._scan(
                    f"{self.filepath} eq {odata_string(path)}", spec.key_field, [spec.key_field]
                )
            except (HttpResponseError, UpstreamUnavailable) as exc:
                return path, f"could not list its chunks: {_reason(exc)}"
            return path, {row[spec.key_field] for row in rows}

        found: dict[str, set[str]] = {}
        for path, result in await asyncio.gather(*(one(p) for p in filepaths)):
            if isinstance(result, str):
                outcome.errors[path] = result
            else:
                found[path] = result
        return found

    async def _scan(self, where: str, order: str, select: list[str]) -> list[dict[str, Any]]:
        """Every document matching `where`, paged by `order` (a sortable field) so no skip limit applies."""
        rows: list[dict[str, Any]] = []
        last: str | None = None
        while True:
            flt = where if last is None else f"({where}) and {order} gt {odata_string(last)}"

            async def page(flt: str = flt) -> list[dict[str, Any]]:
                async with self._gate:
                    results = await self._docs.search(
                        search_text="*",
                        filter=flt,
                        select=select,
                        order_by=[f"{order} asc"],
                        top=self.page_size,
                    )
                    return [dict(row) async for row in results]

            batch = await self._call(page())
            rows += batch
            if len(batch) < self.page_size:
                return rows
            last = batch[-1][order]

    def _batches(self, actions: list[Action]) -> list[list[Action]]:
        batches: list[list[Action]] = []
        current: list[Action] = []
        size = 0
        for action in actions:
            if current and (len(current) >= self.batch_docs or size + action.size > self.batch_bytes):
                batches.append(current)
                current, size = [], 0
            current.append(action)
            size += action.size
        if current:
            batches.append(current)
        return batches

    async def _run(self, actions: list[Action], tick: Tick) -> dict[str, str]:
        """Send `actions` in batches, several at once; returns filepath -> first failure reason."""
        failed: dict[str, str] = {}
        results = await asyncio.gather(*(self._send(batch, tick) for batch in self._batches(actions)))
        for batch_failures in results:
            for path, reason in batch_failures.items():
                failed.setdefault(path, reason)
        return failed

    async def _send(self, batch: list[Action], tick: Tick) -> dict[str, str]:
        """One batch, retrying the documents (or the whole request) the service asks to retry."""
        key = self.spec.key_field
        pending = batch
        failed: dict[str, str] = {}
        for attempt in range(self.retries + 1):
            request = IndexDocumentsBatch()
            for action in pending:
                if action.kind == "upload":
                    request.add_upload_actions([action.document])
                elif action.kind == "merge":
                    request.add_merge_actions([action.document])
                else:
                    request.add_delete_actions([action.document])
            last_try = attempt == self.retries
            try:
                async with self._gate:
                    results = await self._docs.index_documents(request)
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
                status = getattr(exc, "status_code", None)
                if status in (401, 403):
                    raise AuthError(f"Azure AI Search refused the credentials: {_reason(exc)}") from None
                if status in RETRYABLE_REQUEST and not last_try:
                    await asyncio.sleep(backoff(attempt, base=self.retry_base))
                    continue
                return {a.filepath: f"upload failed: {_reason(exc)}" for a in pending}
            by_key = {a.document[key]: a for a in pending}
            retry: list[Action] = []
            done = 0
            for result in results:
                sent = by_key.get(result.key)
                if sent is None:
                    continue
                if result.succeeded:
                    done += sent.kind == "upload"
                elif result.status_code in RETRYABLE_DOCUMENT and not last_try:
                    retry.append(sent)
                else:
                    failed.setdefault(
                        sent.filepath,
                        f"chunk {result.key}: {result.status_code} {result.error_message or 'rejected'}",
                    )
            tick(done)
            if not retry:
                return failed
            log.info("retrying %d of %d documents the service asked to retry", len(retry), len(pending))
            await asyncio.sleep(backoff(attempt, base=self.retry_base))
            pending = retry
        return failed

    async def _call(self, call: Awaitable[T]) -> T:
        """One management or query call, with auth and network failures turned into typed errors."""
        try:
            return await call
        except ResourceNotFoundError:
            raise
        except ClientAuthenticationError as exc:
            raise AuthError(f"Azure AI Search refused the credentials: {_reason(exc)}") from None
        except HttpResponseError as exc:
            if exc.status_code == 403:
                raise AuthError(f"Azure AI Search refused the credentials: {_reason(exc)}") from None
            raise
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise UpstreamUnavailable(f"Azure AI Search is unreachable: {exc}") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, HttpResponseError):
        message = exc.error.message if exc.error and exc.error.message else str(exc.message or exc)
        return f"{exc.status_code} {message.splitlines()[0]}" if exc.status_code else message.splitlines()[0]
    if isinstance(exc, RagError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
