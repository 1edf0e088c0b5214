"""POSTing a hand-off to the help desk's webhook: a Teams Workflow or any endpoint that takes JSON.

Retries a refused or unreachable delivery (408, 429, 5xx, connection errors, timeouts) with backoff,
waiting what `Retry-After` asks, all within one deadline: the user waits for the outcome, so a slow
help desk gets a clear "not sent" rather than a turn that never ends. The URL's query (a Workflow's
`sig=`) is a credential: logs name only the scheme and host.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel

from rag import telemetry
from rag.http_sessions import client_session

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 5
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
ATTEMPT_TIMEOUT_S = 10.0
WORKFLOW_HOSTS = (".logic.azure.com", ".powerplatform.com", ".powerautomate.com")
PEER = "handoff webhook"
"""How retries and 429s of the webhook are labelled in the metrics."""
Format = Literal["json", "teams"]


class Delivery(BaseModel):
    """What became of one hand-off post."""

    sent: bool
    attempts: int
    status: int | None = None
    detail: str = ""


def where(url: str) -> str:
    """The URL as a log may show it: scheme and host only (the path and query may hold credentials)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def webhook_format(url: str, setting: str = "auto") -> Format:
    """`teams` for a Teams Workflows ("When a Teams webhook request is received") URL, else `json`."""
    if setting in ("json", "teams"):
        return "teams" if setting == "teams" else "json"
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    workflow = host.endswith(WORKFLOW_HOSTS) and "/workflows/" in parts.path.lower()
    return "teams" if workflow else "json"


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked by a `Retry-After` header: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Webhook:
    """One help-desk endpoint; `post` never raises for a delivery fault, it reports it."""

    def __init__(self, url: str, *, deadline: float = 20.0) -> None:
        self.url = url
        self.deadline = deadline
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = client_session(
                timeout=aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT_S, connect=ATTEMPT_TIMEOUT_S), limit=10
            )
        return self._session

    async def post(self, payload: dict[str, Any]) -> Delivery:
        loop = asyncio.get_running_loop()
        end = loop.time() + self.deadline
        target = where(self.url)
        status: int | None = None
        detail = ""
        attempt = 0
        while attempt < MAX_ATTEMPTS:
            attempt += 1
            left = end - loop.time()
            if left <= 0:
                detail = f"no answer within {self.deadline:g} s"
                break
            asked: float | None = None
            try:
                timeout = aiohttp.ClientTimeout(total=min(left, ATTEMPT_TIMEOUT_S))
                async with self._session_now().post(self.url, json=payload, timeout=timeout) as response:
                    status = response.status
                    if status < 300:
                        log.info("hand-off delivered to %s (HTTP %d, attempt %d)", target, status, attempt)
                        return Delivery(sent=True, attempts=attempt, status=status)
                    detail = f"HTTP {status}"
                    if status not in RETRYABLE:
                        break
                    asked = retry_after(response.headers.get("Retry-After"))
                    if status == 429:
                        telemetry.record_throttled(PEER)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = None
                detail = (
                    "timed out" if isinstance(exc, TimeoutError) else f"unreachable ({type(exc).__name__})"
                )
            wait = asked if asked is not None else min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (attempt - 1))
            if asked is None:
                wait *= random.uniform(0.5, 1.0)
            if loop.time() + wait >= end:
                if asked is not None:
                    detail += f", asked to wait {asked:g} s"
                break
            log.info("hand-off to %s: %s; retrying in %.2f s", target, detail, wait)
            telemetry.record_retry(PEER, status)
            await asyncio.sleep(wait)
        log.warning("hand-off not delivered to %s after %d attempts: %s", target, attempt, detail)
        return Delivery(sent=False, attempts=attempt, status=status, detail=detail)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
