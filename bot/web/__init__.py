"""The web chat page (`GET /`, Microsoft's Web Chat served from this process) and its token endpoint.

`add_webchat_routes` is the one call `create_app` makes. Without `DIRECT_LINE_SECRET` it also mounts
the local Direct Line; with it, `POST /api/directline/token` trades the secret for a token server-side.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from string import Template
from typing import Any

from aiohttp import web
from yarl import URL

from bot.directline import AzureDirectLine, Bot, DirectLineUnavailable, LocalDirectLine
from bot.directline.clients import StartLimits, client_of
from bot.identity import Identities
from bot.settings import BotSettings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
WEBCHAT_JS = STATIC_DIR / "vendor" / "webchat.js"
PAGE_TEMPLATE = HERE / "index.html"

LOCAL_DIRECT_LINE: web.AppKey[LocalDirectLine] = web.AppKey("local_direct_line", LocalDirectLine)


class ChatPage:
    """Serves the page and mints tokens from whichever Direct Line is configured."""

    def __init__(
        self,
        settings: BotSettings,
        source: LocalDirectLine | AzureDirectLine | None,
        limits: StartLimits,
        identities: Identities,
        unavailable: str = "",
    ) -> None:
        self.source = source
        self.identities = identities
        self.limits = limits
        self.unavailable = unavailable
        self.page = Template(PAGE_TEMPLATE.read_text(encoding="utf-8")).substitute(
            title=html.escape(settings.app_name), subtitle=html.escape(settings.subtitle)
        )
        connect = "'self'"
        if isinstance(source, AzureDirectLine):
            endpoint = URL(source.endpoint)
            stream = endpoint.with_scheme("wss" if endpoint.scheme == "https" else "ws")
            connect += f" {endpoint.origin()} {stream.origin()}"
        self.csp = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob:; font-src 'self' data:; connect-src {connect}; "
            "object-src 'none'; base-uri 'none'"
        )

    async def index(self, request: web.Request) -> web.Response:
        if not WEBCHAT_JS.is_file():
            return web.Response(
                status=503,
                text=f"The Web Chat bundle is missing ({WEBCHAT_JS}). Run `make webchat`.",
            )
        return web.Response(
            text=self.page, content_type="text/html", headers={"Content-Security-Policy": self.csp}
        )

    async def token(self, request: web.Request) -> web.Response:
        """`{token, conversationId, userId, expires_in[, domain]}`; `domain` only when not this server.

        Limited per client, as `tokens/generate` (the same count): each token may start a conversation.
        A user signed in through App Service authentication (when trusted) is bound into the token's user,
        so every message the page sends is theirs and no other's."""
        client = client_of(request)
        self.limits.check("token", client)
        who = self.identities.from_headers(request.headers)
        try:
            if isinstance(self.source, LocalDirectLine):
                body: dict[str, Any] = self.source.new_token(client, who=who)
            elif isinstance(self.source, AzureDirectLine):
                binding = self.identities.binding
                body = await self.source.new_token(binding.bind(who) if who and binding else None)
            else:
                return error_response(503, "WebChatUnavailable", self.unavailable)
        except DirectLineUnavailable as exc:
            log.warning("web chat: %s", exc)
            return error_response(502, "DirectLineUnavailable", str(exc))
        return web.json_response(body, headers={"Cache-Control": "no-store"})


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def add_webchat_routes(
    app: web.Application, settings: BotSettings, bot: Bot, identities: Identities | None = None
) -> None:
    """Mount `GET /`, `/static/`, `POST /api/directline/token` and, in local mode, `/v3/directline`
    (which hands the visitors' activities to `bot`); `identities` reads the token requests' signed-in user."""
    source: LocalDirectLine | AzureDirectLine | None = None
    unavailable = ""
    limits = StartLimits(settings.directline_starts_per_minute)
    if settings.direct_line_secret and settings.direct_line_secret.get_secret_value():
        source = AzureDirectLine(settings.direct_line_secret, settings.direct_line_endpoint)
        app.cleanup_ctx.append(source.lifecycle)
    elif settings.auth_enabled:
        # A registered bot is reached through Azure Bot Service: its web chat goes through Azure's Direct
        # Line, so the bot's auth is not side-stepped by an anonymous local one.
        unavailable = "MicrosoftAppId is set, so web chat needs DIRECT_LINE_SECRET (Azure Direct Line)."
        log.warning("web chat: %s", unavailable)
    else:
        source = LocalDirectLine(settings, bot, limits)
        source.add_routes(app)
        app[LOCAL_DIRECT_LINE] = source
    page = ChatPage(settings, source, limits, identities or Identities(), unavailable)
    app.router.add_get("/", page.index)
    app.router.add_post("/api/directline/token", page.token)
    app.router.add_static("/static/", STATIC_DIR)
