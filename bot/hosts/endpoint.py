"""`POST /api/messages` on any host: request hygiene, authentication, the turn, its HTTP answer.

Every malformed request gets a 4xx, never a 500; a token that cannot be checked because the signing
keys are unavailable gets 503; a reply that cannot be delivered (the channel's error or the bot's own
credentials) gets 502. Expected faults are logged as one WARNING line each.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from bot.activity import BadActivity, check_activity
from bot.hosts.errors import AuthUnavailable, CredentialError, OutboxError, Unauthorized
from bot.hosts.host import Host
from bot.outbox import BufferedOutbox, ConnectorOutbox, Outbox
from bot.turns import TurnHandler

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def process(request: web.Request, host: Host, turns: TurnHandler) -> web.Response:
    """Check, authenticate, run the turn, answer with its result."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if request.content_type != "application/json":
        return _error(415, "Content-Type must be application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body is not valid JSON")
    try:
        activity = check_activity(body, raw)
    except BadActivity as exc:
        return _error(400, f"not a valid activity: {exc}")
    try:
        await host.authenticate(activity, request.headers.get("Authorization", ""))
    except Unauthorized as exc:
        log.warning("rejected a request to /api/messages: %s", exc)
        return _error(401, "unauthorized")
    except AuthUnavailable as exc:
        log.warning("could not check a request's token: %s", exc)
        return _error(503, "the bot cannot check tokens right now (signing keys unavailable); retry later")
    if not host.service_url_allowed(activity["serviceUrl"]):
        return _error(400, "serviceUrl must be https")
    outbox: Outbox
    if activity.get("deliveryMode") == "expectReplies":
        outbox = BufferedOutbox(activity)
    else:
        outbox = ConnectorOutbox(activity, host.connector(activity["serviceUrl"]))
    try:
        result = await turns.handle(activity, outbox, host=host.name, carrier=request.headers)
    except CredentialError as exc:
        log.warning("could not obtain the bot's token to reply to %s: %s", activity["serviceUrl"], exc)
        return _error(502, "the bot could not obtain its credentials to reply; the turn was not saved")
    except OutboxError as exc:
        log.warning("could not deliver a reply to %s: %s", activity["serviceUrl"], exc)
        return _error(502, "the reply could not be delivered to the channel")
    if result is not None:
        return web.json_response(result.body, status=result.status)
    if isinstance(outbox, BufferedOutbox):
        return web.json_response({"activities": outbox.activities})
    return web.Response(status=200)
