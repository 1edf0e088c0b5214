"""OpenID metadata and signing keys, fetched on the event loop with aiohttp and cached.

botbuilder fetches them with a blocking `requests.get` without a timeout (on the loop: one hung
metadata host froze the whole server) and the Agents SDK with `PyJWKClient` in a thread; neither is
used. Here each metadata URL has one cache entry that:

- fetches the document and its `jwks_uri` within `FETCH_DEADLINE_S` (connect and read timeouts too);
- refreshes ahead: once keys are `refresh_after` old, the next request starts a background refresh
  and is served from the keys it has;
- runs one fetch at a time: concurrent requests wait on the fetch in flight (bounded by its
  deadline); after a failed fetch, requests fail fast for `retry_after` instead of starting another;
- keeps its keys when a refresh fails (they stay usable until `max_age`);
- fetches again for an unknown key id at most every `unknown_kid_interval` (key rollover), so forged
  key ids cannot drive a fetch per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from jwt.algorithms import RSAAlgorithm

from bot.hosts.errors import AuthUnavailable

log = logging.getLogger(__name__)

FETCH_DEADLINE_S = 4.0
"""Metadata and keys together; a request waiting on them gets its 503 within about this long."""
CONNECT_TIMEOUT_S = 2.0
REFRESH_AFTER_S = 12 * 3600.0
"""Keys older than this are refreshed in the background (botbuilder refreshes daily)."""
MAX_AGE_S = 5 * 24 * 3600.0
"""Keys older than this are not used any more, even when every refresh since has failed."""
RETRY_AFTER_S = 5.0
UNKNOWN_KID_INTERVAL_S = 300.0
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_KEYS = 100


@dataclass(frozen=True)
class SigningKey:
    public_key: Any
    endorsements: tuple[str, ...]


class OpenIdKeys:
    """The signing keys published by one OpenID metadata URL."""

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        url: str,
        *,
        deadline: float = FETCH_DEADLINE_S,
        refresh_after: float = REFRESH_AFTER_S,
        max_age: float = MAX_AGE_S,
        retry_after: float = RETRY_AFTER_S,
        unknown_kid_interval: float = UNKNOWN_KID_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._session = session
        self._deadline = deadline
        self._refresh_after = refresh_after
        self._max_age = max_age
        self._retry_after = retry_after
        self._unknown_kid_interval = unknown_kid_interval
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._failed_at = float("-inf")
        self._failure = ""
        self._fetch: asyncio.Task[None] | None = None
        self.fetches = 0
        """How many fetches were started (the reliability suite counts them)."""

    async def key(self, kid: str) -> SigningKey | None:
        """The key with this id; None when the document has no such key (the token is not ours)."""
        now = self._clock()
        if now - self._fetched_at > self._max_age:
            await self._wait_for_fetch()
        elif now - self._fetched_at > self._refresh_after and now - self._failed_at >= self._retry_after:
            self._start_fetch()  # in the background: the keys we have are still good
        found = self._keys.get(kid)
        if found is None and now - self._attempted_at > self._unknown_kid_interval:
            with contextlib.suppress(AuthUnavailable):  # keep the keys we have; the kid is unknown
                await self._wait_for_fetch()
            found = self._keys.get(kid)
        return found

    def prefetch(self) -> None:
        """Start fetching now (at start-up), so the first request finds the keys."""
        self._start_fetch()

    async def close(self) -> None:
        if self._fetch is not None:
            self._fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetch

    async def _wait_for_fetch(self) -> None:
        if self._fetch is None and self._clock() - self._failed_at < self._retry_after:
            raise AuthUnavailable(f"{self.url}: {self._failure} (retrying shortly)")
        task = self._start_fetch()
        await asyncio.shield(task)  # a caller that goes away does not cancel the others' fetch
        if self._clock() - self._fetched_at > self._max_age:
            raise AuthUnavailable(f"{self.url}: {self._failure}")

    def _start_fetch(self) -> asyncio.Task[None]:
        if self._fetch is None:
            self.fetches += 1
            self._attempted_at = self._clock()
            self._fetch = asyncio.create_task(self._run_fetch())
        return self._fetch

    async def _run_fetch(self) -> None:
        try:
            async with asyncio.timeout(self._deadline):
                keys = await self._download()
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            self._failed_at = self._clock()
            self._failure = _describe(exc, self._deadline)
            log.warning(
                "OpenID metadata %s could not be fetched: %s (%s)",
                self.url,
                self._failure,
                "keeping the keys fetched before" if self._keys else "tokens cannot be checked until it can",
            )
        else:
            self._keys, self._fetched_at = keys, self._clock()
        finally:
            self._fetch = None

    async def _download(self) -> dict[str, SigningKey]:
        metadata = await self._get_json(self.url)
        jwks = await self._get_json(str(metadata["jwks_uri"]))
        found: dict[str, SigningKey] = {}
        for jwk in jwks["keys"][:MAX_KEYS]:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or jwk.get("kty") != "RSA":
                continue
            endorsements = jwk.get("endorsements") or []
            found[jwk["kid"]] = SigningKey(
                RSAAlgorithm.from_jwk(json.dumps(jwk)), tuple(str(e) for e in endorsements)
            )
        if not found:
            raise ValueError("the key set holds no RSA signing key")
        return found

    async def _get_json(self, url: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self._deadline, connect=CONNECT_TIMEOUT_S)
        async with self._session().get(url, timeout=timeout, allow_redirects=False) as response:
            if response.status != 200:
                raise ValueError(f"{url} answered {response.status}")
            body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError(f"{url} sent no JSON object")
        return document


def _describe(exc: BaseException, deadline: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {deadline:g} s"
    return f"{type(exc).__name__}: {exc}"[:300]


class OpenIdCache:
    """One :class:`OpenIdKeys` per metadata URL, sharing the host's HTTP session."""

    def __init__(self, session: Callable[[], aiohttp.ClientSession], **options: Any) -> None:
        self._session = session
        self._options = options
        self._by_url: dict[str, OpenIdKeys] = {}

    def keys(self, url: str) -> OpenIdKeys:
        found = self._by_url.get(url)
        if found is None:
            found = self._by_url[url] = OpenIdKeys(self._session, url, **self._options)
        return found

    async def close(self) -> None:
        for keys in self._by_url.values():
            await keys.close()
