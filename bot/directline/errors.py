"""Errors of the local Direct Line, in Direct Line's shape: `{"error": {"code", "message"}}`."""

from __future__ import annotations

import json

from aiohttp import web

MAX_USER_ACTIVITY_BYTES = 32 * 1024

_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    429: web.HTTPTooManyRequests,
    503: web.HTTPServiceUnavailable,
}


def error(status: int, code: str, message: str, retry_after: int | None = None) -> web.HTTPException:
    """Direct Line's error body shape: {"error": {"code", "message"}}."""
    body = json.dumps({"error": {"code": code, "message": message}})
    if status == 413:
        return web.HTTPRequestEntityTooLarge(
            MAX_USER_ACTIVITY_BYTES, text=body, content_type="application/json"
        )
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return _ERRORS[status](text=body, content_type="application/json", headers=headers)
