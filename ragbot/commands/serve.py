"""`ragbot serve`: run the bot, its web chat page and health probes."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import sys

from rag.settings import Settings, choose_backend
from ragbot.commands._common import init
from ragbot.logs import redaction

HELP = "run the bot (POST /api/messages), the web chat page (GET /) and health probes"
DESCRIPTION = """Serve the Bot Framework endpoint POST /api/messages, the web chat page at /,
and GET /healthz and /readyz. Host and port come from RAGBOT_HOST and RAGBOT_PORT
(default 127.0.0.1:3978) unless given here. With no MicrosoftAppId, inbound auth is off:
fine on your machine, never in production. Conversation memory and feedback are kept in
RAGBOT_STORAGE (default: a SQLite file under RAGBOT_DATA_DIR). Traces and metrics go to an
OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) and/or Application Insights
(APPLICATIONINSIGHTS_CONNECTION_STRING); with neither, nothing is exported."""

log = logging.getLogger("ragbot.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to listen on (default: RAGBOT_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: RAGBOT_PORT or 3978)")
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request")


def uses_local_model(settings: Settings) -> bool:
    """The local backend, or the grounded one searching the local index or writing extractive answers."""
    choice = choose_backend(settings).name
    extractive = settings.ragbot.generator == "extractive" or (
        settings.ragbot.generator == "auto"
        and not settings.openai.configured
        and not settings.ragbot.llm_base_url
    )
    return choice == "local" or (choice == "grounded" and (not settings.search.configured or extractive))


M_TRIM_THRESHOLD = -1  # glibc mallopt() parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_FROM_BYTES = 256 * 1024
TRIM_FROM_BYTES = 1024 * 1024


def tune_malloc() -> None:
    """Large blocks straight from mmap, and freed heap handed back past 1 MiB (glibc, Linux).

    glibc raises its mmap threshold each time a large block is freed, so after start-up (the model's
    weights folded, the index read) large temporaries come from the heap and the freed heap is kept:
    a fixed threshold returns them to the system when freed (bench rss, 50k chunks: steady 301 -> 268 MB)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_FROM_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_FROM_BYTES)


def run(args: argparse.Namespace) -> int:
    tune_malloc()
    settings = init()
    if uses_local_model(settings.rag):
        # Load the embedding model before the bot's libraries: building the session briefly takes twice
        # its final size, and that peak then falls while little else is resident (bench rss, 50k chunks:
        # peak 346 -> 297 MB).
        from rag.local.embedder import LocalEmbedder

        LocalEmbedder().warm_up()
    from bot.app import ListenError, create_app, serve
    from bot.handoff import HandOff
    from bot.identity import build_identities
    from bot.identity import describe as describe_askers
    from bot.state import describe
    from bot.telemetry import setup
    from rag.factory import build_answerer
    from rag.summary import summary_client

    bot = settings.bot
    host, port = args.host or bot.host, args.port or bot.port
    choice = choose_backend(settings.rag)
    log.info("answer backend: %s (%s)", choice.name, choice.reason)
    log.info("conversation state: %s", describe(bot))
    handoff = HandOff(bot, summary_client(settings.rag))
    groups_column = bool(settings.rag.search.permitted_groups_column)
    identities = build_identities(settings.identity, bot, groups_column=groups_column)
    log.info("who asks: %s", describe_askers(settings.identity, bot, groups_column=groups_column))
    app = create_app(bot, build_answerer(settings.rag), handoff=handoff, identities=identities)
    access_log = logging.getLogger("aiohttp.access") if args.access_log else None
    stop_telemetry = setup(settings.telemetry, redaction())
    try:
        serve(app, host, port, access_log=access_log)
    except ListenError as exc:
        print(f"ragbot serve: {exc}", file=sys.stderr)
        return 2
    finally:
        if stop_telemetry is not None:
            stop_telemetry()
    return 0
