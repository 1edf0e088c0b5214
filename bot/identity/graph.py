"""A user's groups from Microsoft Graph: `GET /v1.0/users/{id}/transitiveMemberOf/microsoft.graph.group`.

Nested groups count (transitive), only group ids are read (`$select=id`), pages are followed through
`@odata.nextLink` (only on Graph's own origin, so the app's token never goes elsewhere). Each read has a
deadline; 429 and 503 are retried after the Retry-After Graph asks for, when that fits the turn; any
other failure raises GroupsUnavailable. A user Graph does not know (404) has no groups.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import ClientError, ClientSession, ClientTimeout
from azure.core.credentials_async import AsyncTokenCredential
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from yarl import URL

from bot.identity.errors import GroupsUnavailable
from rag.azure.auth import BearerTokens
from rag.azure.retry import server_delay
from rag.errors import AuthError
from rag.http_sessions import client_session

log = logging.getLogger(__name__)

PAGE_SIZE = 999
"""Graph's largest page for this call (default 100)."""
MAX_GROUPS = 5000
"""Past this the rest is not read: fewer groups can only hide documents, never show more."""
MAX_PAGE_BYTES = 2 * 1024**2
ATTEMPTS = 3
MAX_RETRY_AFTER = 5.0
"""A longer wait than this would outlast the turn: the lookup fails instead (and is asked again later)."""
RETRIED = (429, 503, 504)
CONCURRENT_LOOKUPS = 16


class _Member(BaseModel):
    id: str = Field(min_length=1, max_length=200)


class _Page(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    value: list[_Member]
    next_link: str | None = Field(default=None, alias="@odata.nextLink")


class _ErrorBody(BaseModel):
    code: str = ""
    message: str = ""


class GraphError(BaseModel):
    error: _ErrorBody


def _graph_error(body: bytes) -> str:
    """`code: message` from Graph's error body, when it has one."""
    try:
        error = GraphError.model_validate_json(body).error
    except ValidationError:
        return ""
    return f" ({error.code}: {error.message[:200]})"


class GraphGroups:
    """Group ids of one user, read with an app-only token from `credential`."""

    def __init__(self, credential: AsyncTokenCredential, endpoint: str, timeout: float) -> None:
        self.endpoint = URL(endpoint.rstrip("/"))
        self.tokens = BearerTokens(credential, f"{self.endpoint}/.default")
        self.timeout = timeout
        self._session: ClientSession | None = None
        self._slots = asyncio.Semaphore(CONCURRENT_LOOKUPS)

    @property
    def session(self) -> ClientSession:
        if self._session is None or self._session.closed:
            self._session = client_session(
                timeout=ClientTimeout(total=self.timeout), limit=CONCURRENT_LOOKUPS
            )
        return self._session

    async def aclose(self) -> None:
        await self.tokens.close()
        if self._session is not None:
            await self._session.close()

    def first_page(self, object_id: str) -> URL:
        return (
            self.endpoint / "v1.0" / "users" / object_id / "transitiveMemberOf" / "microsoft.graph.group"
        ).with_query({"$select": "id", "$top": str(PAGE_SIZE), "$count": "true"})

    async def groups(self, object_id: str) -> list[str]:
        """Every group `object_id` belongs to, directly or through nested groups."""
        async with self._slots:
            found: list[str] = []
            url: URL | None = self.first_page(object_id)
            while url is not None:
                page = await self._page(url)
                if page is None:
                    return []  # no such user in this directory: no groups
                found.extend(member.id for member in page.value)
                if len(found) >= MAX_GROUPS:
                    log.warning(
                        "groups: user %s is in more than %d groups; only the first %d count",
                        object_id,
                        MAX_GROUPS,
                        MAX_GROUPS,
                    )
                    return found[:MAX_GROUPS]
                url = self._next(page.next_link)
            return found

    def _next(self, link: str | None) -> URL | None:
        if not link:
            return None
        url = URL(link)
        if url.origin() != self.endpoint.origin():
            raise GroupsUnavailable(f"Graph's next page is on another host ({url.host}); not followed")
        return url

    async def _page(self, url: URL) -> _Page | None:
        """One page; None for 404 (unknown user). Retries 429/503/504 within the bounds above."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with asyncio.timeout(self.timeout):
                    header = await self.tokens.header()
            except AuthError as exc:
                raise GroupsUnavailable(f"no token for Microsoft Graph: {exc}") from exc
            except TimeoutError as exc:
                raise GroupsUnavailable(f"no token for Microsoft Graph within {self.timeout:g} s") from exc
            try:
                async with self.session.get(
                    url, headers={"Authorization": header, "ConsistencyLevel": "eventual"}
                ) as response:
                    body = await response.content.read(MAX_PAGE_BYTES + 1)
                    status, headers = response.status, response.headers
            except (ClientError, TimeoutError) as exc:
                if attempt < ATTEMPTS:
                    continue
                raise GroupsUnavailable(f"Microsoft Graph did not answer: {type(exc).__name__}") from exc
            if len(body) > MAX_PAGE_BYTES:
                raise GroupsUnavailable(f"Graph's page is larger than {MAX_PAGE_BYTES} bytes")
            if status == 200:
                try:
                    return _Page.model_validate_json(body)
                except ValidationError as exc:
                    raise GroupsUnavailable("Graph's answer is not a list of groups") from exc
            if status == 404:
                return None
            if status in RETRIED and attempt < ATTEMPTS:
                wait = server_delay(headers)
                wait = 1.0 if wait is None else wait
                if wait <= MAX_RETRY_AFTER:
                    await asyncio.sleep(wait)
                    continue
            hint = ""
            if status == 403:
                hint = "; grant the app registration GroupMember.Read.All (application) with admin consent"
            raise GroupsUnavailable(f"Microsoft Graph answered HTTP {status}{_graph_error(body)}{hint}")
        raise GroupsUnavailable("Microsoft Graph: no answer after retries")
