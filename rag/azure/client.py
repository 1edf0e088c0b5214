"""The one HTTP client every model call in `rag` goes through: Azure OpenAI or any OpenAI-compatible server.

Public surface (used by On Your Data, the grounded backend's generators and the embedders):

- ``AzureOpenAIClient.from_settings(settings)`` - Azure mode from `AZURE_OPENAI_*`: POST
  ``{endpoint}/openai/deployments/{deployment}/{route}?api-version=...`` with the ``api-key`` header, or,
  without a key, an Entra ID bearer token for ``https://cognitiveservices.azure.com/.default`` from
  azure-identity's DefaultAzureCredential (cached, refreshed five minutes before expiry).
- ``AzureOpenAIClient.openai_compatible(settings)`` - OpenAI mode from `RAGBOT_LLM_BASE_URL` /
  `_API_KEY` / `_MODEL` (Ollama, vLLM, OpenAI): POST ``{base}/{route}`` with ``Authorization: Bearer`` and
  ``model`` set in the body.
- ``await client.chat(body, deployment=None)`` -> the response JSON (dict).
- ``client.chat_stream(body, deployment=None)`` -> async iterator of parsed SSE chunk dicts (sets
  ``"stream": true``); ends at ``[DONE]``; a stream cut short or garbled raises :class:`UpstreamUnavailable`.
- ``await client.embeddings(body, deployment=None)`` -> the response JSON.
- ``await client.aclose()``.
`deployment` defaults to `AZURE_OPENAI_MODEL` (Azure) or `RAGBOT_LLM_MODEL` (OpenAI mode); `route` defaults
to ``chat/completions`` (On Your Data's legacy dialect passes ``extensions/chat/completions``).

Every call shares one aiohttp session, waits for the client-side rate limit (`RAGBOT_RATE_LIMIT_CALLS` per
`RAGBOT_RATE_LIMIT_PERIOD` s), and retries 408/429/5xx, connection errors and timeouts with exponential
backoff and jitter, honouring `retry-after-ms`, `x-ms-retry-after-ms` and `Retry-After`, as long as the
wait fits in `RAGBOT_RETRY_BUDGET` seconds. Streams are retried only before their first byte. Failures
raise :mod:`rag.errors` types: AuthError, Throttled, ContentFiltered, DataSourceError, UpstreamUnavailable.
Timeouts: connect (at most 10 s), first byte / between stream chunks, and total (ten times longer for a
stream), all from `RAGBOT_REQUEST_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal, TypedDict
from urllib.parse import quote

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from pydantic import BaseModel, SecretStr

from rag import telemetry
from rag.azure.auth import BearerTokens, default_credential
from rag.azure.failures import error_for
from rag.azure.retry import RETRYABLE_STATUS, RateLimiter, SearchRetryPolicy, backoff, server_delay
from rag.errors import ConfigError, RagError, Throttled, UpstreamUnavailable
from rag.http_sessions import client_session
from rag.settings import RagSettings, Settings

log = logging.getLogger(__name__)

PEER = "azure_openai"
"""The peer's name on the retry and 429 metrics."""
Mode = Literal["azure", "openai"]


class Timeouts(BaseModel):
    connect: float = 10.0
    read: float = 60.0  # until the first byte, and between stream chunks
    total: float = 60.0
    stream_total: float = 600.0

    @classmethod
    def from_seconds(cls, seconds: float) -> Timeouts:
        return cls(connect=min(10.0, seconds), read=seconds, total=seconds, stream_total=10 * seconds)


class TransportOptions(TypedDict):
    timeouts: Timeouts
    retry_budget: float
    rate_limit: tuple[int, float]


def transport_options(rag: RagSettings) -> TransportOptions:
    """Timeouts, retry budget and rate limit: the same `RAGBOT_*` knobs for every client from settings."""
    return TransportOptions(
        timeouts=Timeouts.from_seconds(rag.request_timeout),
        retry_budget=rag.retry_budget,
        rate_limit=(rag.rate_limit_calls, rag.rate_limit_period),
    )


def sdk_options(rag: RagSettings) -> dict[str, Any]:
    """The same `RAGBOT_*` timeouts and retry budget as keyword options of an azure-core SDK client
    (azure-search-documents): see :class:`~rag.azure.retry.SearchRetryPolicy`."""
    timeouts = Timeouts.from_seconds(rag.request_timeout)
    return {
        "connection_timeout": timeouts.connect,
        "read_timeout": timeouts.read,
        "retry_policy": SearchRetryPolicy(
            budget=rag.retry_budget, request_timeout=timeouts.total, retry_backoff_max=16.0
        ),
    }


class AzureOpenAIClient:
    def __init__(
        self,
        *,
        base_url: str,
        mode: Mode = "azure",
        api_version: str | None = None,
        api_key: SecretStr | None = None,
        credential: AsyncTokenCredential | None = None,
        default_deployment: str | None = None,
        timeouts: Timeouts | None = None,
        retry_budget: float = 60.0,
        rate_limit: tuple[int, float] = (1000, 60.0),
    ) -> None:
        if mode == "azure" and not api_version:
            raise ConfigError("an Azure OpenAI client needs an api-version")
        self.base_url = base_url.rstrip("/")
        self.mode, self.api_version = mode, api_version
        self.default_deployment = default_deployment
        self.timeouts = timeouts or Timeouts()
        self.retry_budget = retry_budget
        self._key = api_key.get_secret_value() if api_key else None
        self._tokens: BearerTokens | None = None
        if mode == "azure" and not self._key:
            self._tokens = BearerTokens(credential or default_credential())
        self._limiter = RateLimiter(*rate_limit)
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=self.timeouts.total, connect=self.timeouts.connect, sock_read=self.timeouts.read
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=self.timeouts.stream_total, connect=self.timeouts.connect, sock_read=self.timeouts.read
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, credential: AsyncTokenCredential | None = None
    ) -> AzureOpenAIClient:
        openai, rag = settings.openai, settings.ragbot
        if not openai.base_url:
            raise ConfigError("set AZURE_OPENAI_ENDPOINT or AZURE_OPENAI_RESOURCE")
        return cls(
            base_url=openai.base_url,
            api_version=openai.preview_api_version,
            api_key=openai.key,
            credential=credential,
            default_deployment=openai.model,
            **transport_options(rag),
        )

    @classmethod
    def openai_compatible(cls, settings: Settings) -> AzureOpenAIClient:
        rag = settings.ragbot
        if not rag.llm_base_url:
            raise ConfigError("set RAGBOT_LLM_BASE_URL (e.g. http://127.0.0.1:11434/v1)")
        return cls(
            base_url=rag.llm_base_url,
            mode="openai",
            api_key=rag.llm_api_key,
            default_deployment=rag.llm_model,
            **transport_options(rag),
        )

    async def chat(
        self, body: dict[str, Any], *, deployment: str | None = None, route: str = "chat/completions"
    ) -> dict[str, Any]:
        return await self._traced_post("chat", route, body, deployment)

    async def embeddings(self, body: dict[str, Any], *, deployment: str | None = None) -> dict[str, Any]:
        return await self._traced_post("embeddings", "embeddings", body, deployment)

    def chat_stream(
        self, body: dict[str, Any], *, deployment: str | None = None, route: str = "chat/completions"
    ) -> AsyncIterator[dict[str, Any]]:
        labels = self._model_labels("chat", deployment)
        return telemetry.model_stream(labels, body, self._chat_stream(body, deployment, route))

    def _model_labels(self, operation: str, deployment: str | None) -> dict[str, str]:
        system = "az.ai.openai" if self.mode == "azure" else "openai"
        return telemetry.model_labels(operation, system, deployment or self.default_deployment or "")

    async def _traced_post(
        self, operation: str, route: str, body: dict[str, Any], deployment: str | None
    ) -> dict[str, Any]:
        labels = self._model_labels(operation, deployment)
        with telemetry.model_call(labels, body) as span:
            payload = await self._post_json(route, body, deployment)
            telemetry.observe_response(span, payload, labels)
        return payload

    async def _chat_stream(
        self, body: dict[str, Any], deployment: str | None, route: str
    ) -> AsyncIterator[dict[str, Any]]:
        url, body = self._target(route, {**body, "stream": True}, deployment)
        response = await self._send(url, body, stream=True)
        try:
            async for data in _sse_data(response):
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise UpstreamUnavailable(
                        f"the answer stream sent a malformed event: {data[:200]!r}"
                    ) from None
                if not isinstance(chunk, dict):
                    raise UpstreamUnavailable(f"the answer stream sent a malformed event: {data[:200]!r}")
                if isinstance(chunk.get("error"), dict):
                    raise error_for(500, chunk, data_sources=_has_data_sources(body))
                yield chunk
            raise UpstreamUnavailable("the answer stream ended before it finished (no [DONE])")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"the answer stream broke off: {_describe(exc)}") from exc
        except UnicodeDecodeError as exc:
            raise UpstreamUnavailable(f"the answer stream is not UTF-8 text: {exc}") from exc
        finally:
            response.release()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._tokens is not None:
            await self._tokens.close()

    def _target(self, route: str, body: dict[str, Any], deployment: str | None) -> tuple[str, dict[str, Any]]:
        name = deployment or self.default_deployment
        if not name:
            raise ConfigError("no model deployment: set AZURE_OPENAI_MODEL (or RAGBOT_LLM_MODEL)")
        if self.mode == "openai":
            return f"{self.base_url}/{route}", ({**body, "model": name} if body else body)
        deployment_url = f"{self.base_url}/openai/deployments/{quote(name, safe='')}"
        return f"{deployment_url}/{route}?api-version={self.api_version}", body

    async def _post_json(self, route: str, body: dict[str, Any], deployment: str | None) -> dict[str, Any]:
        url, body = self._target(route, body, deployment)
        response = await self._send(url, body)
        try:
            payload = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise UpstreamUnavailable(f"Azure OpenAI's response could not be read: {_describe(exc)}") from exc
        finally:
            response.release()
        if not isinstance(payload, dict):
            raise UpstreamUnavailable("Azure OpenAI answered with something other than a JSON object")
        return payload

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = client_session(timeout=self._timeout)
        return self._session

    async def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.mode == "openai":
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
        elif self._key:
            headers["api-key"] = self._key
        elif self._tokens is not None:
            headers["Authorization"] = await self._tokens.header()
        return headers

    async def _send(self, url: str, body: dict[str, Any], *, stream: bool = False) -> aiohttp.ClientResponse:
        """POST with retries; returns a 2xx response whose body the caller reads and releases.

        A stream's total time is :attr:`Timeouts.stream_total`: a long answer may take longer than one
        whole-body call, and the read timeout already bounds every pause between chunks."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_budget
        data_sources = _has_data_sources(body)
        attempt = 0
        while True:
            await self._limiter.acquire()
            failure: RagError
            status: int | None = None
            try:
                timeout = self._stream_timeout if stream else self._timeout
                response = await self._session_now().post(
                    url, json=body, headers=await self._headers(), timeout=timeout
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = UpstreamUnavailable(f"Azure OpenAI could not be reached: {_describe(exc)}")
                wait = backoff(attempt)
            else:
                status = response.status
                if status < 400:
                    return response
                if status == 429:
                    telemetry.record_throttled(PEER)
                payload = await _error_payload(response)
                asked = server_delay(response.headers)
                if response.status == 401 and self._tokens is not None:
                    self._tokens.forget()
                if response.status not in RETRYABLE_STATUS:
                    raise error_for(response.status, payload, data_sources=data_sources)
                wait = asked if asked is not None else backoff(attempt)
                failure = error_for(response.status, payload, data_sources=data_sources, retry_after=wait)
            if loop.time() + wait > deadline:
                if isinstance(failure, Throttled):
                    failure.retry_after = wait
                raise failure
            telemetry.record_retry(PEER, status)
            log.info("retrying in %.2f s after: %s", wait, failure)
            await asyncio.sleep(wait)
            attempt += 1


async def _error_payload(response: aiohttp.ClientResponse) -> Any:
    try:
        text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return ""
    finally:
        response.release()
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _sse_data(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The `data` of each server-sent event (multi-line data joined with newlines; comments skipped).

    Lines are split here rather than by aiohttp's readline, which refuses lines over 128 KiB (a context
    chunk with many citations can be larger)."""
    lines: list[str] = []
    pending = b""
    async for piece in response.content.iter_any():
        pending += piece
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            line = raw.decode("utf-8").rstrip("\r")
            if not line:
                if lines:
                    yield "\n".join(lines)
                    lines = []
            elif line.startswith("data:"):
                lines.append(line[5:].removeprefix(" "))
    if pending.startswith(b"data:"):
        lines.append(pending.decode("utf-8")[5:].strip())
    if lines:
        yield "\n".join(lines)


def _has_data_sources(body: dict[str, Any]) -> bool:
    return bool(body.get("data_sources") or body.get("dataSources"))


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
