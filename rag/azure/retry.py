"""When to try again: the service's own retry headers, else exponential backoff with jitter; plus the
client-side call-rate limit (the Power Platform connector allows 1000 calls per 60 s per connection)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from azure.core.pipeline.policies import AsyncRetryPolicy
from pydantic import BaseModel, Field

from rag import telemetry

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
SEARCH_PEER = "azure_search"
"""The peer's name on the retry and 429 metrics."""


def server_delay(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the service asked us to wait: `retry-after-ms`, `x-ms-retry-after-ms`, then `Retry-After`
    (seconds or an HTTP date). None when no usable header is present."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        try:
            return max(0.0, float(lowered[name]) / 1000)
        except (KeyError, ValueError):
            continue
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff(attempt: int, *, base: float = 0.5, cap: float = 16.0, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, so retries spread out."""
    ceiling = min(cap, base * 2**attempt)
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


MAX_DELAY = 300.0  # the longest wait between two tries that a fixed or doubling delay may reach


class RetryPolicy(BaseModel):
    """Which failures are tried again and how long to wait between tries. The defaults are the client's
    own behaviour (408/429/5xx and network faults, jittered exponential backoff, no count cap);
    `ragbot raw` exposes every field. A wait the service asks for (`retry-after-ms`, `Retry-After`)
    always wins over :meth:`wait`, and the client's retry budget caps the total either way."""

    max_retries: int | None = Field(default=None, ge=0)
    delay: float | None = Field(default=None, ge=0, le=MAX_DELAY)  # None: jittered backoff from 0.5 s
    exponential: bool = False  # with `delay`: double it after each try
    all_errors: bool = False  # also 4xx other than 408/429 (e.g. a 404 while a deployment is created)

    def retries(self, status: int | None) -> bool:
        """Whether a failure is worth another try; `status` None is a network fault or a timeout."""
        return status is None or status in RETRYABLE_STATUS or (self.all_errors and status >= 400)

    def wait(self, attempt: int) -> float:
        """Seconds before try `attempt + 1` when the service named no wait."""
        if self.delay is None:
            return backoff(attempt)
        return min(MAX_DELAY, self.delay * 2**attempt) if self.exponential else self.delay

    def allows(self, attempt: int) -> bool:
        """Whether try number `attempt + 1` (a retry when `attempt` > 0) may still be made."""
        return self.max_retries is None or attempt <= self.max_retries


class RateLimiter:
    """At most `calls` starts in any `period` seconds; callers over the limit wait for a free slot."""

    def __init__(self, calls: int, period: float) -> None:
        self.calls, self.period = calls, period
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            while True:
                now = loop.time()
                while self._starts and now - self._starts[0] >= self.period:
                    self._starts.popleft()
                if len(self._starts) < self.calls:
                    self._starts.append(now)
                    return
                await asyncio.sleep(self._starts[0] + self.period - now)


class SearchRetryPolicy(AsyncRetryPolicy):
    """azure-core's retry policy (408/429/5xx, honouring `retry-after-ms`, `x-ms-retry-after-ms` and
    `Retry-After`) for Azure AI Search, with two changes. Searches and knowledge base retrieves are reads
    sent as POST, which azure-core would retry only when a `Retry-After` header is present: POST is
    retried like the idempotent methods. A wait the service asks for beyond `budget` seconds is not
    waited out: the error is raised at once (429 becomes `Throttled` with that wait)."""

    def __init__(self, *, budget: float, **kwargs: Any) -> None:
        super().__init__(
            retry_total=10 if budget > 0 else 0, timeout=budget + kwargs.pop("request_timeout"), **kwargs
        )
        self.budget = budget
        self._method_whitelist = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST"})

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        status = response.http_response.status_code
        if status == 429:
            telemetry.record_throttled(SEARCH_PEER)
        asked = self.get_retry_after(response)
        if asked is not None and asked > self.budget:
            return False
        retry = bool(super().is_retry(settings, response))
        if retry:
            telemetry.record_retry(SEARCH_PEER, status)
        return retry
