"""Hardening headers on every response: no MIME sniffing, a Content-Security-Policy everywhere (with
`frame-ancestors`, so only the sites named in `RAGBOT_FRAME_ANCESTORS` can embed the page), no library
versions in `Server`, and `Cache-Control: no-store` on everything that is not a static file, so no
proxy or browser cache keeps a response that carries a Direct Line token or a conversation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

SERVER = "ragbot"
"""What `Server` says: the product, never aiohttp's or Python's version."""
CSP = "Content-Security-Policy"
LOCKED_DOWN = "default-src 'none'; frame-ancestors 'none'"
"""For responses that are not pages (JSON, scripts, styles, images): they load nothing, nobody frames them."""
PAGE_BASELINE = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'"
)
"""For an HTML response that brings no policy of its own (the chat page brings one)."""

Hook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def harden(response: web.StreamResponse, frame_ancestors: str) -> None:
    """Set the hardening headers on `response`; a policy the handler set is kept, with `frame-ancestors`
    added when it has none."""
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers[hdrs.SERVER] = SERVER
    policy = headers.get(CSP)
    if policy is None:
        policy = PAGE_BASELINE if response.content_type == "text/html" else LOCKED_DOWN
    if "frame-ancestors" not in policy:
        policy = f"{policy.rstrip('; ')}; frame-ancestors {frame_ancestors}"
    headers[CSP] = policy
    if not isinstance(response, web.FileResponse):  # static files revalidate with ETag / Last-Modified
        headers.setdefault(hdrs.CACHE_CONTROL, "no-store")


def hardening_headers(frame_ancestors: str) -> Hook:
    """The `on_response_prepare` hook: every routed response, errors and static files included."""

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        harden(response, frame_ancestors)

    return on_prepare
