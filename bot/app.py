"""The aiohttp application: Bot Framework endpoint, health probes, web chat page."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import suppress
from typing import Any

from aiohttp import web

from bot.handoff import HandOff
from bot.headers import hardening_headers
from bot.hosts import Host, build_host
from bot.hosts.endpoint import MAX_BODY_BYTES, process
from bot.http_limits import protocol_factory, raise_open_file_limit, request_deadlines
from bot.identity import Identities, warn_dev_groups
from bot.settings import BotSettings
from bot.state import StateStore, build_store, open_store
from bot.turns import SOURCES_PREFIX, TurnHandler, TurnTiming
from bot.web import add_webchat_routes
from bot.web.sources import add_source_routes
from rag.contract import Answerer
from rag.tokens import tokenizer

log = logging.getLogger(__name__)

ANSWERER: web.AppKey[Answerer] = web.AppKey("answerer", Answerer)
SETTINGS: web.AppKey[BotSettings] = web.AppKey("settings", BotSettings)
HOST: web.AppKey[Host] = web.AppKey("host", Host)
TURNS: web.AppKey[TurnHandler] = web.AppKey("turns", TurnHandler)

AUTH_OFF_WARNING = (
    "INBOUND AUTH IS OFF: MicrosoftAppId is not set, so /api/messages accepts requests from anyone "
    "and replies to any serviceUrl. Fine on your own machine; never expose this server like that."
)


async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The answer backend can answer (index loaded, credentials present) and the conversation store
    takes writes (not down, disk not full); a failing check is a reason, never a 500."""
    answerer = request.app[ANSWERER]
    store = request.app[TURNS].store
    try:
        reason = await answerer.ready()
        if not reason:
            problem = await store.problem()
            reason = problem and f"conversation store {store.name}: {problem}"
    except Exception as exc:
        log.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
        reason = f"readiness check failed: {type(exc).__name__}: {exc}"
    if reason:
        return web.json_response(
            {"status": "not ready", "backend": answerer.name, "reason": reason}, status=503
        )
    return web.json_response({"status": "ready", "backend": answerer.name})


async def messages(request: web.Request) -> web.Response:
    """`POST /api/messages`: the Bot Framework endpoint."""
    return await process(request, request.app[HOST], request.app[TURNS])


async def _warm_up(app: web.Application) -> None:
    """Load the tokenizer (memory's token budget) before the first turn rather than during it."""
    await asyncio.to_thread(tokenizer)


async def _start_host(app: web.Application) -> None:
    """Fetch the inbound signing keys in the background now, not during the first turn."""
    app[HOST].start()


async def _readiness(app: web.Application) -> AsyncIterator[None]:
    """Check the answer backend in the background at start-up: the log tells the operator at once
    whether it can answer, and a backend that loads its index or model on `ready()` does so now rather
    than during the first user's turn."""
    answerer = app[ANSWERER]

    async def report() -> None:
        reason = await answerer.ready()
        if reason:
            log.warning("answer backend %s is not ready: %s", answerer.name, reason)
        else:
            log.info("answer backend %s is ready", answerer.name)

    task = asyncio.create_task(report())
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def create_app(
    settings: BotSettings,
    answerer: Answerer,
    *,
    storage: StateStore | None = None,
    timing: TurnTiming | None = None,
    auth_overrides: Mapping[str, Any] | None = None,
    handoff: HandOff | None = None,
    identities: Identities | None = None,
) -> web.Application:
    """The whole service; `storage` defaults to `RAGBOT_STORAGE`, `timing` to Teams' stream pacing,
    `handoff` to extractive summaries posted to `RAGBOT_HANDOFF_WEBHOOK`, `identities` to askers known
    only by what a validated activity says (no group lookup)."""
    if not settings.auth_enabled:
        log.warning(AUTH_OFF_WARNING)
    identities = identities or Identities(trust_activities=settings.auth_enabled)
    warn_dev_groups(identities)
    app = web.Application(
        client_max_size=MAX_BODY_BYTES, middlewares=[request_deadlines(settings.body_timeout)]
    )
    store = storage if storage is not None else build_store(settings)
    host = build_host(settings, auth_overrides)
    app[SETTINGS] = settings
    app[ANSWERER] = answerer
    app[HOST] = host
    app[TURNS] = TurnHandler(settings, answerer, store, timing=timing, handoff=handoff, identities=identities)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/api/messages", messages)
    add_webchat_routes(app, settings, app[TURNS], identities)
    add_source_routes(app, app[TURNS].library, SOURCES_PREFIX)
    app.on_response_prepare.append(hardening_headers(settings.frame_ancestors))
    app.on_startup.append(_warm_up)

    async def open_state(app: web.Application) -> None:
        await open_store(store, settings)  # unusable: a ConfigError, so `ragbot serve` exits 2 saying why

    app.on_startup.append(open_state)
    app.on_startup.append(_start_host)
    app.cleanup_ctx.append(_readiness)

    async def close(app: web.Application) -> None:
        await host.close()
        await identities.aclose()
        await app[ANSWERER].aclose()
        await app[TURNS].handoff.aclose()
        if storage is None:
            await store.aclose()

    app.on_cleanup.append(close)
    return app


GC_THRESHOLDS = (10_000, 20, 20)
"""Python's default (700, 10, 10) runs a young-generation collection every 700 allocations; a turn
makes thousands, and the turns in flight survive into the older generations, so at the default the
collector took a quarter to a third of the server's CPU per turn (bench/: 0.9 -> 0.67 ms a turn)."""


async def tune_gc(app: web.Application) -> None:
    """Once started, keep what start-up loaded (modules, schemas, the tokenizer) out of every later
    scan (`gc.freeze`) and collect the young generation less often. Cyclic garbage still goes, in
    larger batches."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it exists (Linux, macOS): the same aiohttp server and client, on a faster loop."""
    if sys.platform == "win32":
        return asyncio.new_event_loop()
    import uvloop

    return uvloop.new_event_loop()


class ListenError(Exception):
    """The server cannot listen where it was asked to (the port is taken, the address is not this
    machine's, the port needs privileges); the message says what to do."""


HINTS = {
    errno.EADDRINUSE: "the port is already in use (another ragbot serve?): stop that process or choose "
    "another port with --port or RAGBOT_PORT",
    errno.EACCES: "permission denied (ports below 1024 need privileges): choose a port above 1024 with "
    "--port or RAGBOT_PORT",
    errno.EADDRNOTAVAIL: "this machine has no such address: use 127.0.0.1, 0.0.0.0 or one of its own "
    "addresses with --host or RAGBOT_HOST",
}


def serve(app: web.Application, host: str, port: int, *, access_log: logging.Logger | None = None) -> None:
    """Serve `app` until SIGINT or SIGTERM (what `ragbot serve` does; the throughput bench runs the
    same), with the read deadlines and the per-client connection cap of `bot.http_limits`. Raises
    ListenError, before the app starts, when the address cannot be listened on.

    This owns the process, so it also tunes the process: uvloop, the collector (`tune_gc`) and the
    open-file limit (`raise_open_file_limit`)."""
    app.on_startup.append(tune_gc)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(app, host, port, access_log))


async def _serve(app: web.Application, host: str, port: int, access_log: logging.Logger | None) -> None:
    loop = asyncio.get_running_loop()
    raise_open_file_limit(app[SETTINGS].max_connections_per_client)
    runner = web.AppRunner(app, access_log=access_log)
    connection = protocol_factory(runner, app[SETTINGS], access_log=access_log)
    try:
        server = await loop.create_server(connection, host, port, start_serving=False)
    except OSError as exc:
        raise _listen_error(host, port, exc) from None
    stop = asyncio.Event()
    with suppress(NotImplementedError):  # Windows: Ctrl+C still ends the run (KeyboardInterrupt)
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
    try:
        await runner.setup()
        try:
            await server.start_serving()
        except OSError as exc:
            raise _listen_error(host, port, exc) from None
        log.info("serving on http://%s:%d/ (bot endpoint /api/messages)", host, port)
        await stop.wait()
    finally:
        server.close()
        await runner.cleanup()


def _listen_error(host: str, port: int, exc: OSError) -> ListenError:
    reason = HINTS.get(exc.errno or 0, exc.strerror or str(exc))
    if isinstance(exc, socket.gaierror):
        reason = f"{host!r} is not a known host name: use an address, such as 127.0.0.1 or 0.0.0.0"
    return ListenError(f"cannot listen on {host}:{port}: {reason}")
