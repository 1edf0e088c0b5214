"""The one place that makes aiohttp client sessions, so timeouts, headers and tracing are set once.

Every outbound HTTP peer (Bot Connector, OpenID keys, Direct Line, Azure OpenAI, Graph, webhooks) gets
its session from :func:`client_session`::

    session = client_session(timeout=aiohttp.ClientTimeout(total=15))

The session sends ``User-Agent: ragbot/<version>``, has a deadline (:data:`DEFAULT_TIMEOUT` unless
given; a per-request ``timeout=`` still overrides it) and a bounded connection pool, and carries the
trace hooks that telemetry registered with :func:`add_trace_config` (none unless telemetry is on, so
an untraced request costs nothing extra). The caller owns the session and closes it.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import aiohttp


def _version() -> str:
    try:
        return version("ragbot")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0"


USER_AGENT = f"ragbot/{_version()}"
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10, sock_read=60)
"""A whole call within a minute, connecting within ten seconds: no read waits forever."""

_trace_configs: list[Callable[[], aiohttp.TraceConfig]] = []


def add_trace_config(factory: Callable[[], aiohttp.TraceConfig]) -> None:
    """Give every session made from now on a fresh TraceConfig from `factory` (telemetry's hook)."""
    _trace_configs.append(factory)


def client_session(
    *,
    timeout: aiohttp.ClientTimeout | None = None,
    limit: int = 100,
    headers: dict[str, str] | None = None,
    json_serialize: Callable[[Any], str] | None = None,
) -> aiohttp.ClientSession:
    """A new session: `timeout` for every request (default :data:`DEFAULT_TIMEOUT`), at most `limit`
    connections, the ragbot User-Agent plus `headers` on every request, `json_serialize` for ``json=``."""
    options: dict[str, Any] = {"json_serialize": json_serialize} if json_serialize else {}
    return aiohttp.ClientSession(
        timeout=timeout or DEFAULT_TIMEOUT,
        connector=aiohttp.TCPConnector(limit=limit),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        trace_configs=[factory() for factory in _trace_configs] or None,
        **options,
    )
