"""The one HTTP client every model call in `rag` goes through: Azure OpenAI or any OpenAI-compatible server.

Public surface (used by On Your Data, the grounded backend's generators and the embedders):

- ``AzureOpenAIClient.from_settings(settings)`` - Azure mode from `AZURE_OPENAI_*`: POST
  ``{endpoint}/openai/deployments/{deployment}/{route}?api-version=...`` with the ``api-key`` header, or,
  without a key, an Entra ID bearer token for ``https://cognitiveservices.azure.com/.default`` from
  azure-identity's DefaultAzureCredential (cached, refreshed five minutes before expiry).
- ``AzureOpenAIClient.openai_compatible(settings)`` - OpenAI mode from `RAGBOT_LLM_BASE_URL` /
  `_API_KEY` / `_MODEL` (Ollama, vLLM, OpenAI): POST ``{base}/{route}`` with ``Authorization: Bearer`` and
  ``model`` set in the body; `RAGBOT_LLM_ORGANIZATION` adds the ``OpenAI-Organization`` header.
- ``await client.chat(body, deployment=None)`` -> the response JSON (dict).
- ``client.chat_stream(body, deployment=None)`` -> async iterator of parsed SSE chunk dicts (sets
  ``"stream": true``); ends at ``[DONE]``; a stream cut short or garbled raises :class:`UpstreamUnavailable`.
- ``await client.embeddings(body, deployment=None)`` -> the response JSON.
- ``await client.images(body, deployment=None)`` -> the response JSON of ``images/generations``.
- ``await client.request(method, path, ...)`` -> :class:`RawResponse`: any call under the base URL (query,
  headers, JSON, form or multipart data, its own timeout and :class:`~rag.azure.retry.RetryPolicy`),
  body read up to a byte cap; ``on_request`` sees each try as sent (for `ragbot raw --debug`).
- ``await client.download(url, max_bytes=...)`` -> bytes of a URL the service handed out (an image),
  fetched without credentials, within the timeout and the byte cap.
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
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict
from urllib.parse import quote, urlsplit

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from pydantic import BaseModel, SecretStr
from yarl import URL

from rag import telemetry
from rag.azure.auth import BearerTokens, default_credential
from rag.azure.failures import error_for
from rag.azure.retry import RateLimiter, RetryPolicy, SearchRetryPolicy, server_delay
from rag.errors import ConfigError, RagError, Throttled, UpstreamUnavailable
from rag.http_sessions import client_session
from rag.settings import RagSettings, Settings

log = logging.getLogger(__name__)

PEER = "azure_openai"
"""The peer's name on the retry and 429 metrics."""
Mode = Literal["azure", "openai"]
OnRequest = Callable[[str, str, Mapping[str, str]], None]  # method, URL, headers of each try as sent
DEFAULT_MAX_BYTES = 64 * 1024**2  # the most a raw response or a downloaded file may hold
ERROR_BODY_BYTES = 1024**2  # the most of an error body read for its message


class Timeouts(BaseModel):
    connect: float = 10.0
    read: float = 60.0  # until the first byte, and between stream chunks
    total: float = 60.0
    stream_total: float = 600.0

    @classmethod
    def from_seconds(cls, seconds: float) -> Timeouts:
        return cls(connect=min(10.0, seconds), read=seconds, total=seconds, stream_total=10 * seconds)

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, connect=self.connect, sock_read=self.read)


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class Upload:
    """One file of a multipart request: the form field, the file name sent, its bytes."""

    field: str
    filename: str
    content: bytes


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
        organization: str | None = None,
    ) -> None:
        if mode == "azure" and not api_version:
            raise ConfigError("an Azure OpenAI client needs an api-version")
        self.base_url = base_url.rstrip("/")
        self.mode, self.api_version = mode, api_version
        self.default_deployment = default_deployment
        self.timeouts = timeouts or Timeouts()
        self.retry_budget = retry_budget
        self.organization = organization
        self._key = api_key.get_secret_value() if api_key else None
        self._tokens: BearerTokens | None = None
        if mode == "azure" and not self._key:
            self._tokens = BearerTokens(credential or default_credential())
        self._limiter = RateLimiter(*rate_limit)
        self._session: aiohttp.ClientSession | None = None
        self._timeout = self.timeouts.client_timeout()
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
            organization=rag.llm_organization,
            **transport_options(rag),
        )

    async def chat(
        self, body: dict[str, Any], *, deployment: str | None = None, route: str = "chat/completions"
    ) -> dict[str, Any]:
        return await self._traced_post("chat", route, body, deployment)

    async def embeddings(self, body: dict[str, Any], *, deployment: str | None = None) -> dict[str, Any]:
        return await self._traced_post("embeddings", "embeddings", body, deployment)

    async def images(self, body: dict[str, Any], *, deployment: str | None = None) -> dict[str, Any]:
        return await self._traced_post("images", "images/generations", body, deployment)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: list[tuple[str, str]] | None = None,
        files: list[Upload] | None = None,
        time_limit: float | None = None,
        retry: RetryPolicy | None = None,
        on_request: OnRequest | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> RawResponse:
        """Any call under the base URL, with the client's credentials, rate limit and retries.

        `path` is relative to the endpoint (`/openai/deployments`, `/models`); ``{deployment}`` in it is
        the default deployment. In Azure mode `api-version` is added unless the query names one. JSON,
        form fields and files are exclusive of JSON: form alone is URL-encoded, with files multipart."""
        if urlsplit(path).scheme or path.startswith("//"):
            raise ConfigError(f"give a path under the endpoint, not a URL: {path!r}")
        if "{deployment}" in path:
            name = self.default_deployment
            if not name:
                raise ConfigError("{deployment} in the path needs AZURE_OPENAI_MODEL (or RAGBOT_LLM_MODEL)")
            path = path.replace("{deployment}", quote(name, safe=""))
        params = dict(query or {})
        if self.mode == "azure" and "api-version" not in params and "api-version=" not in path:
            params["api-version"] = str(self.api_version)
        url = f"{self.base_url}/{path.lstrip('/')}"
        if params:
            url = str(URL(url).update_query(params))
        if json_body is not None and (form or files):
            raise ConfigError("send either JSON or form data, not both")
        response = await self._send(
            method.upper(),
            url,
            body=json_body,
            data=_form_data(form or [], files or []) if (form or files) else None,
            headers=dict(headers or {}),
            limits=Timeouts.from_seconds(time_limit).client_timeout() if time_limit else None,
            retry=retry,
            on_request=on_request,
        )
        try:
            content = await read_capped(response, max_bytes)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"the response could not be read: {_describe(exc)}") from exc
        finally:
            response.release()
        return RawResponse(response.status, dict(response.headers), content)

    async def download(
        self, url: str, *, max_bytes: int = DEFAULT_MAX_BYTES, time_limit: float | None = None
    ) -> bytes:
        """GET a URL the service handed out (a generated image on blob storage), without this client's
        credentials or rate limit, retried like any call, read within `time_limit` seconds (else the
        client's timeout) and `max_bytes`."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise UpstreamUnavailable(f"the service handed out a URL that is not http(s): {url[:80]!r}")
        response = await self._send(
            "GET",
            url,
            credentials=False,
            limits=Timeouts.from_seconds(time_limit).client_timeout() if time_limit else None,
        )
        try:
            return await read_capped(response, max_bytes)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"the download broke off: {_describe(exc)}") from exc
        finally:
            response.release()

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
        response = await self._send("POST", url, body=body, limits=self._stream_timeout)
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
        response = await self._send("POST", url, body=body)
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
        """The credentials: `api-key` or an Entra bearer token (Azure); a bearer key and the
        `OpenAI-Organization` header (OpenAI mode)."""
        headers: dict[str, str] = {}
        if self.mode == "openai":
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
            if self.organization:
                headers["OpenAI-Organization"] = self.organization
        elif self._key:
            headers["api-key"] = self._key
        elif self._tokens is not None:
            headers["Authorization"] = await self._tokens.header()
        return headers

    async def _send(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        data: Callable[[], Any] | None = None,
        headers: dict[str, str] | None = None,
        limits: aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
        credentials: bool = True,
        on_request: OnRequest | None = None,
    ) -> aiohttp.ClientResponse:
        """Send with retries; returns a 2xx/3xx response whose body the caller reads and releases.

        `body` goes as JSON, else `data()` builds a fresh form for each try. Calls with `credentials`
        wait for the rate limit; a download (no credentials) does not. A stream passes its own timeout:
        its total is :attr:`Timeouts.stream_total`, since a long answer may take longer than one
        whole-body call and the read timeout already bounds every pause between chunks."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_budget
        policy = retry or RetryPolicy()
        data_sources = isinstance(body, dict) and _has_data_sources(body)
        attempt = 0
        while True:
            if credentials:
                await self._limiter.acquire()
            sent = {**(await self._headers() if credentials else {}), **(headers or {})}
            if on_request is not None:
                on_request(method, url, sent)
            failure: RagError
            status: int | None = None
            try:
                response = await self._session_now().request(
                    method,
                    url,
                    json=body,
                    data=data() if data is not None else None,
                    headers=sent,
                    timeout=limits or self._timeout,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                where = "Azure OpenAI" if credentials else urlsplit(url).netloc
                failure = UpstreamUnavailable(f"{where} could not be reached: {_describe(exc)}")
                wait = policy.wait(attempt)
            else:
                status = response.status
                if status < 400:
                    return response
                if status == 429 and credentials:
                    telemetry.record_throttled(PEER)
                payload = await _error_payload(response)
                asked = server_delay(response.headers)
                if response.status == 401 and self._tokens is not None and credentials:
                    self._tokens.forget()
                if not policy.retries(response.status):
                    raise error_for(response.status, payload, data_sources=data_sources)
                wait = asked if asked is not None else policy.wait(attempt)
                failure = error_for(response.status, payload, data_sources=data_sources, retry_after=wait)
            if not policy.allows(attempt + 1) or loop.time() + wait > deadline:
                if isinstance(failure, Throttled):
                    failure.retry_after = wait
                raise failure
            if credentials:
                telemetry.record_retry(PEER, status)
            log.info("retrying in %.2f s after: %s", wait, failure)
            await asyncio.sleep(wait)
            attempt += 1


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, refused as soon as it is known to exceed `max_bytes` (by its length or as it arrives)."""
    too_big = UpstreamUnavailable(f"the response is larger than the {max_bytes:,}-byte cap")
    if response.content_length is not None and response.content_length > max_bytes:
        raise too_big
    content = bytearray()
    async for piece in response.content.iter_chunked(64 * 1024):
        content += piece
        if len(content) > max_bytes:
            raise too_big
    return bytes(content)


def _form_data(form: list[tuple[str, str]], files: list[Upload]) -> Callable[[], Any]:
    """A builder of the request's form (a FormData is spent once sent, so each try builds its own)."""

    def build() -> Any:
        if not files:
            return list(form)
        data = aiohttp.FormData()
        for name, value in form:
            data.add_field(name, value)
        for upload in files:
            data.add_field(upload.field, upload.content, filename=upload.filename)
        return data

    return build


async def _error_payload(response: aiohttp.ClientResponse) -> Any:
    """The error body (JSON when it parses), read up to :data:`ERROR_BODY_BYTES`: a peer that answers an
    error with megabytes gets its status reported, not its body buffered."""
    try:
        text = (await read_capped(response, ERROR_BODY_BYTES)).decode("utf-8", errors="replace")
    except (aiohttp.ClientError, TimeoutError, UpstreamUnavailable):
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
