"""Azure OpenAI and Azure AI Search error responses turned into the typed errors of :mod:`rag.errors`."""

from __future__ import annotations

import re
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)

from rag.azure.responses import filter_results, filtered_categories
from rag.azure.retry import server_delay
from rag.errors import AuthError, ContentFiltered, DataSourceError, RagError, Throttled, UpstreamUnavailable

NO_ON_YOUR_DATA = (
    "this model does not support On Your Data (Azure answered: {message}); use the grounded backend "
    "(RAGBOT_BACKEND=grounded), which searches the index itself and works with any chat model"
)
ON_YOUR_DATA_GONE = (
    "Azure no longer serves On Your Data here (Azure answered: {message}); it was retired on 2026-10-14. "
    "Set RAGBOT_BACKEND=grounded (or auto): it searches the same index itself and works with any chat model"
)
_UNRECOGNIZED = re.compile(r"unrecognized request argument supplied:\s*(data_sources|dataSources)", re.I)
_FEATURE = r"(data[ _]?sources?|on your data|extensions?|azure_search)"
# a model that takes no data sources: the argument is unknown to it, or its validator refuses extra inputs
_NO_DATA_SOURCES = re.compile(
    rf"{_FEATURE}\b.*\bnot (supported|available)|\bnot supported\b.*{_FEATURE}|"
    r"extra inputs are not permitted",
    re.I,
)
# the feature itself is gone: Azure's wording is not published, so the words it is bound to use are matched
_RETIRED = re.compile(
    rf"\bretire(d|ment)\b|{_FEATURE}\b.*\b(deprecated|no longer (supported|available))|"
    rf"\b(deprecated|no longer (supported|available))\b.*{_FEATURE}",
    re.I,
)
_RETIRED_CODES = frozenset({"OperationNotSupported", "FeatureRetired", "FeatureDeprecated", "Deprecated"})
# the content filter's error codes: chat (`content_filter`) and image generation (`contentFilter` in Azure's
# docs, OpenAI's `content_policy_violation`); the spec's inner code says the same for either
_FILTER_CODES = frozenset({"content_filter", "contentFilter", "content_policy_violation"})


def error_fields(payload: Any) -> tuple[str, str, dict[str, Any]]:
    """(code, message, inner error) from an error body; tolerant of non-JSON and missing parts."""
    if not isinstance(payload, dict):
        return "", str(payload or "")[:500], {}
    error = payload.get("error", payload)
    if not isinstance(error, dict):
        return "", str(error)[:500], {}
    inner = error.get("innererror") or error.get("inner_error") or {}
    return (
        str(error.get("code") or ""),
        str(error.get("message") or ""),
        inner if isinstance(inner, dict) else {},
    )


def prompt_filtered(payload: Any) -> ContentFiltered:
    """A prompt blocked by the content filter; both spellings seen in the wild are read:
    `innererror.content_filter_result` (service) and `inner_error.content_filter_results` (spec)."""
    _, message, inner = error_fields(payload)
    raw = inner.get("content_filter_result") or inner.get("content_filter_results")
    return ContentFiltered("prompt", filtered_categories(filter_results(raw, "prompt")), message)


def error_for(status: int, payload: Any, *, data_sources: bool, retry_after: float | None = None) -> RagError:
    """The typed error for an HTTP failure; `data_sources` tells whether the request carried any."""
    code, message, inner = error_fields(payload)
    where = f"Azure OpenAI answered {status}" + (f" {code}" if code else "")
    if (
        code in _FILTER_CODES
        or inner.get("code") == "ResponsibleAIPolicyViolation"
        or (status == 400 and "content management policy" in message.lower())
    ):
        return prompt_filtered(payload)
    if _UNRECOGNIZED.search(message):
        return DataSourceError(NO_ON_YOUR_DATA.format(message=message))
    if data_sources and status in (400, 404, 410):
        if status == 410 or code in _RETIRED_CODES or _RETIRED.search(message):
            return DataSourceError(ON_YOUR_DATA_GONE.format(message=message or code or status))
        if _NO_DATA_SOURCES.search(message):
            return DataSourceError(NO_ON_YOUR_DATA.format(message=message))
    if status in (401, 403):
        return AuthError(f"{where}: {message or 'credentials refused'}")
    if status == 429:
        return Throttled(retry_after or 0.0, f"{where}: still throttled after retrying: {message}")
    if status == 404:
        return UpstreamUnavailable(
            f"{where}: {message or 'not found'} (check the endpoint and deployment name)"
        )
    if 400 <= status < 500 and data_sources:
        return DataSourceError(f"{where}: the data source was rejected: {message}")
    return UpstreamUnavailable(f"{where}: {message or 'no details'}")


def search_error(exc: AzureError, subject: str) -> RagError:
    """An azure-search-documents failure as a typed error; `subject` names what was asked for
    (e.g. "Azure AI Search index 'kb'"). The SDK has already retried 408/429/5xx, honouring
    `retry-after-ms`, `x-ms-retry-after-ms` and `Retry-After`."""
    error = getattr(exc, "error", None)
    detail = getattr(error, "message", None) or (str(exc.message or exc).splitlines() or [""])[0]
    if not isinstance(exc, HttpResponseError):
        return UpstreamUnavailable(f"Azure AI Search is unreachable: {detail}")
    status = exc.status_code or 0
    where = f"Azure AI Search answered {status}" if status else "Azure AI Search failed"
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return AuthError(f"Azure AI Search refused the credentials: {detail}")
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return DataSourceError(f"{subject} not found: {detail}")
    if status == 429:
        wait = server_delay(getattr(exc.response, "headers", None) or {}) or 0.0
        return Throttled(wait, f"{where}: still throttled after retrying: {detail}")
    if 400 <= status < 500:
        return DataSourceError(f"{where} for {subject}: {detail}")
    return UpstreamUnavailable(f"{where}: {detail}")
