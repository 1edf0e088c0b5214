"""`ragbot serve`: run the bot, its web chat page and health probes."""

from __future__ import annotations

import argparse
import logging
import sys

from bot.app import ListenError, create_app, serve
from rag.factory import build_answerer
from rag.settings import choose_backend
from ragbot.commands._common import init

HELP = "run the bot (POST /api/messages), the web chat page (GET /) and health probes"
DESCRIPTION = """Serve the Bot Framework endpoint POST /api/messages, the web chat page at /,
and GET /healthz and /readyz. Host and port come from RAGBOT_HOST and RAGBOT_PORT
(default 127.0.0.1:3978) unless given here. With no MicrosoftAppId, inbound auth is off:
fine on your machine, never in production. Conversation memory and feedback are kept in
RAGBOT_STORAGE (default: a SQLite file under RAGBOT_DATA_DIR)."""

log = logging.getLogger("ragbot.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to listen on (default: RAGBOT_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: RAGBOT_PORT or 3978)")
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request")


def run(args: argparse.Namespace) -> int:
    settings = init()
    bot = settings.bot
    host, port = args.host or bot.host, args.port or bot.port
    choice = choose_backend(settings.rag)
    log.info("answer backend: %s (%s)", choice.name, choice.reason)
    log.info("conversation memory: %s storage", bot.storage)
    app = create_app(bot, build_answerer(settings.rag))
    access_log = logging.getLogger("aiohttp.access") if args.access_log else None
    try:
        serve(app, host, port, access_log=access_log)
    except ListenError as exc:
        print(f"ragbot serve: {exc}", file=sys.stderr)
        return 2
    return 0
