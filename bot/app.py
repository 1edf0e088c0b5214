"""The aiohttp application: Bot Framework endpoint, health probes, web chat page."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.settings import BotSettings
from rag.contract import Answerer

log = logging.getLogger(__name__)

ANSWERER: web.AppKey[Answerer] = web.AppKey("answerer", Answerer)
SETTINGS: web.AppKey[BotSettings] = web.AppKey("settings", BotSettings)


async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The answer backend can answer (index loaded, credentials present)."""
    answerer = request.app[ANSWERER]
    reason = await answerer.ready()
    if reason:
        return web.json_response(
            {"status": "not ready", "backend": answerer.name, "reason": reason}, status=503
        )
    return web.json_response({"status": "ready", "backend": answerer.name})


def create_app(settings: BotSettings, answerer: Answerer) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    app[ANSWERER] = answerer
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    async def close_answerer(app: web.Application) -> None:
        await app[ANSWERER].aclose()

    app.on_cleanup.append(close_answerer)
    return app
