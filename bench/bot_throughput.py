"""Bot turns per second: ragbot's `/api/messages` against botbuilder's stock CloudAdapter, same run.

Run by hand: `.venv/bin/python -m bench.bot_throughput` (about 5 minutes; `--quick`: 32 conversations
only, shorter runs), or as the `throughput` piece of `python -m bench`.

Four processes on loopback: the load generator (this one, aiohttp client, N conversations each posting
its next turn as soon as the previous one was answered), the server under test, and a fake Bot
Connector that takes the replies. Servers, each measured in turn:

- stock: botbuilder 4.17's `CloudAdapter` + `ConfigurationBotFrameworkAuthentication` and an
  `ActivityHandler` that echoes the text (one reply per turn);
- ragbot: `bot.app.create_app` with an answer backend that answers instantly (one rendered reply with a
  citation per turn: the typing indicator waits 0.25 s, so an instant answer goes out alone; thread
  memory in SQLite - the default - or in memory), served by `bot.app.serve` as `ragbot serve` does;
- stock-typing: stock with botbuilder's `ShowTypingMiddleware(delay=0)` and answers that take 10 ms;
- ragbot-typing: ragbot with answers that take 10 ms and the typing indicator due at once, so a turn
  posts a typing activity and then the reply, as with a real, slower backend (the note says on how many
  turns the indicator went out: under load an answer can still come first);
- agents: ragbot on the Microsoft 365 Agents SDK host (`RAGBOT_BOT_HOST=agents`), otherwise as ragbot;
- stock-agents: the Agents SDK 1.9's echo as its samples run it: `CloudAdapter` with an
  `MsalConnectionManager`, `AgentApplication` + `Authorization` on `MemoryStorage`, a message route
  that echoes, `start_agent_process` behind `jwt_authorization_middleware` (anonymous allowed);
- ragbot-traced: ragbot with traces and metrics on (`bot.telemetry.setup`, as `ragbot serve` with
  OTEL_EXPORTER_OTLP_ENDPOINT set), exported over OTLP/HTTP to a loopback receiver that decodes every
  export (a fifth process; metrics every second, so their export is measured too), every turn traced
  (OpenTelemetry's default sampler);
- ragbot-sampled, ragbot-sampled-1pc: the same with one turn in ten, in a hundred traced
  (OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1, 0.01); metrics still count
  every turn;
- ragbot-local-untraced, ragbot-local-traced: the default product - the local backend answering from
  the sample index (samples/helpdesk, built once for the run) - with telemetry off and every turn traced,
  32 conversations: what tracing costs beside real retrieval rather than an instant answer;
- bare: an aiohttp handler that parses the JSON body and answers JSON (no reply at all): the ceiling.

Auth is off for all (no app id), as in local mode. The figure to read is ragbot / stock.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.loopback import HOST, cpu_seconds, free_port
from bench.rows import Row, render
from rag.contract import Answer, AnswerDelta, Citation

BENCH = "throughput"
SERVERS = (
    "stock",
    "ragbot",
    "agents",
    "stock-agents",
    "stock-typing",
    "ragbot-typing",
    "bare",
)
TYPING_ANSWER_S = 0.01
"""How long ragbot-typing's answers take: long enough for the typing indicator to go out first."""
READY_S = 60.0
TRACING: dict[str, tuple[str, dict[str, str] | None]] = {
    # server kind: (what the row says, the telemetry settings beside the OTLP endpoint; None: off)
    "ragbot-untraced": ("telemetry off", None),
    "ragbot-traced": ("every turn traced", {}),
    "ragbot-sampled": (
        "1 turn in 10 traced",
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    ),
    "ragbot-sampled-1pc": (
        "1 turn in 100 traced",
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    ),
}
TRACING_LOCAL: dict[str, tuple[str, dict[str, str] | None]] = {
    "ragbot-local-untraced": ("local backend, telemetry off", None),
    "ragbot-local-traced": ("local backend, every turn traced", {}),
}
LOCAL_LEVEL = 32
SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "helpdesk"
ROUNDS = 3
EXPORT_WAIT_S = 2.5
"""The batch span processor exports every second here (OTEL_BSP_SCHEDULE_DELAY, default 5 s): after a
run, what it still holds arrives within this."""


# --- the servers (each runs in its own process) ----------------------------------------------------


class InstantAnswerer:
    """An answer backend that answers at once (or after `delay`): what is left is the bot's own cost."""

    name = "instant"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    async def answer(self, history: Sequence[Any], question: str, user: Any = None) -> Any:
        if self.delay:
            await asyncio.sleep(self.delay)
        return Answer(
            content=f"You asked: {question[:80]} [doc1].",
            citations=[Citation(content="Bench document.", title="Bench", url="https://kb.example/bench")],
            intent=[question[:80]],
        )

    async def stream(self, history: Sequence[Any], question: str, user: Any = None) -> AsyncIterator[Any]:
        answer = await self.answer(history, question, user)
        yield AnswerDelta(content=answer.content, citations=answer.citations, intent=answer.intent)

    async def ready(self) -> str | None:
        return None

    async def aclose(self) -> None:
        return None


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def stock_app(typing: bool = False) -> web.Application:
    from botbuilder.core import ActivityHandler, MessageFactory, ShowTypingMiddleware, TurnContext
    from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication

    class Config:
        APP_ID = ""
        APP_PASSWORD = ""
        APP_TYPE = "MultiTenant"
        APP_TENANTID = ""

    class Echo(ActivityHandler):
        async def on_message_activity(self, turn_context: TurnContext) -> None:
            if typing:
                await asyncio.sleep(TYPING_ANSWER_S)
            await turn_context.send_activity(MessageFactory.text(f"echo: {turn_context.activity.text}"))

    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(Config()))
    if typing:
        adapter.use(ShowTypingMiddleware(delay=0, period=2.0))  # botbuilder's own typing indicator
    bot = Echo()

    async def messages(request: web.Request) -> web.Response:
        response = await adapter.process(request, bot)
        return response if response is not None else web.Response(status=201)

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", _healthz)
    return app


def stock_agents_app() -> web.Application:
    from microsoft_agents.activity import load_configuration_from_env
    from microsoft_agents.authentication.msal import MsalConnectionManager
    from microsoft_agents.hosting.aiohttp import (
        CloudAdapter,
        jwt_authorization_middleware,
        start_agent_process,
    )
    from microsoft_agents.hosting.core import (
        AgentApplication,
        AgentAuthConfiguration,
        Authorization,
        MemoryStorage,
        TurnContext,
        TurnState,
    )

    config = load_configuration_from_env(
        {"CONNECTIONS__SERVICE_CONNECTION__SETTINGS__ANONYMOUS_ALLOWED": "true"}
    )
    storage = MemoryStorage()
    connections = MsalConnectionManager(**config)
    adapter = CloudAdapter(connection_manager=connections)
    authorization = Authorization(storage, connections, **config)
    agent = AgentApplication[TurnState](
        storage=storage, adapter=adapter, authorization=authorization, **config
    )

    @agent.activity("message")
    async def on_message(context: TurnContext, state: TurnState) -> None:
        await context.send_activity(f"echo: {context.activity.text}")

    async def messages(request: web.Request) -> web.Response:
        response = await start_agent_process(request, agent, adapter)
        return response if response is not None else web.Response(status=202)

    app = web.Application(middlewares=[jwt_authorization_middleware])
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", _healthz)
    app["agent_configuration"] = AgentAuthConfiguration(anonymous_allowed=True)
    app["agent_app"] = agent
    app["adapter"] = adapter
    return app


def ragbot_app(
    data_dir: str, storage: str, typing: bool = False, host: str = "botbuilder", local: bool = False
) -> web.Application:
    from bot.app import create_app
    from bot.settings import BotSettings
    from bot.turns import TurnTiming
    from rag.factory import build_answerer
    from rag.settings import load_settings

    settings = BotSettings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=Path(data_dir),
        storage=storage,
        user_turns_per_minute=10_000,
        bot_host=host,
    )
    if typing:
        return create_app(settings, InstantAnswerer(TYPING_ANSWER_S), timing=TurnTiming(typing_delay=0))
    if local:  # the index in data_dir, as `ragbot serve` with no Azure settings builds its backend
        os.environ["RAGBOT_DATA_DIR"] = data_dir  # this server's own process
        return create_app(settings, build_answerer(load_settings(env_file=None)))
    return create_app(settings, InstantAnswerer())


def bare_app() -> web.Application:
    async def messages(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"id": body.get("id")})

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", _healthz)
    return app


def connector_app() -> web.Application:
    ids = itertools.count(1)
    posted: collections.Counter[str] = collections.Counter()

    async def activity(request: web.Request) -> web.Response:
        posted[str((await request.json()).get("type"))] += 1
        return web.json_response({"id": f"r-{next(ids)}"})

    async def counts(request: web.Request) -> web.Response:
        return web.json_response(posted)

    app = web.Application()
    app.router.add_post("/v3/conversations/{conversation}/activities", activity)
    app.router.add_post("/v3/conversations/{conversation}/activities/{reply_to}", activity)
    app.router.add_get("/posted", counts)
    app.router.add_get("/healthz", _healthz)
    return app


def _serve(kind: str, port: int, data_dir: str, storage: str, env: dict[str, str]) -> None:
    import logging

    os.environ.update(env)
    logging.basicConfig(level=logging.ERROR)
    if {**TRACING, **TRACING_LOCAL}.get(kind, ("", None))[1] is not None:
        from bot.telemetry import TelemetrySettings, setup

        setup(TelemetrySettings(_env_file=None))  # type: ignore[call-arg]
    if kind.startswith("ragbot") or kind == "agents":
        from bot.app import serve

        # As `ragbot serve` runs it (uvloop included); the others as their own samples run them.
        host = "agents" if kind == "agents" else "botbuilder"
        app = ragbot_app(
            data_dir,
            storage,
            typing=kind == "ragbot-typing",
            host=host,
            local=kind.startswith("ragbot-local"),
        )
        serve(app, HOST, port)
        return
    if kind == "otlp":
        from tests.otlp_receiver import OtlpReceiver

        receiver = OtlpReceiver(keep=False).app()
        receiver.router.add_get("/healthz", _healthz)
        web.run_app(receiver, host=HOST, port=port, print=None, access_log=None)
        return
    app = {
        "stock": stock_app,
        "stock-typing": lambda: stock_app(typing=True),
        "stock-agents": stock_agents_app,
        "bare": bare_app,
        "connector": connector_app,
    }[kind]()
    web.run_app(app, host=HOST, port=port, print=None, access_log=None)


class Process:
    """One server in a child process, killed on exit."""

    def __init__(
        self,
        kind: str,
        data_dir: str = "",
        storage: str = "sqlite",
        cpus: set[int] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.cpus = cpus
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(
            target=_serve,
            args=(kind, self.port, data_dir, storage, env or {}),
            daemon=True,
            name=f"bench-{kind}",
        )

    async def __aenter__(self) -> Process:
        self._process.start()
        if self.cpus:
            os.sched_setaffinity(self._process.pid, self.cpus)
        async with asyncio.timeout(READY_S), aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                if not self._process.is_alive():
                    raise RuntimeError(f"{self._process.name} exited with {self._process.exitcode}")
                await asyncio.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User + system CPU the server process used so far."""
        return cpu_seconds(self._process.pid)

    async def __aexit__(self, *exc: object) -> None:
        self._process.kill()
        self._process.join(5)


# --- the load ------------------------------------------------------------------------------------


@dataclass
class Result:
    turns_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    turns: int = 0
    cpu_ms_per_turn: float = 0.0
    typing_per_turn: float = 0.0
    spans_per_turn: float = 0.0


def _activity(service_url: str, conversation: int, turn: int) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"c{conversation}-t{turn}-{time.monotonic_ns()}",
        "channelId": "emulator",
        "serviceUrl": service_url,
        "conversation": {"id": f"bench-conversation-{conversation}"},
        "from": {"id": f"bench-user-{conversation}", "name": "Bench"},
        "recipient": {"id": "bench-bot", "name": "Bench bot"},
        "text": f"How do I reset my password? (turn {turn})",
        "locale": "en-US",
    }


async def load(url: str, service_url: str, conversations: int, seconds: float, warmup: float) -> Result:
    """`conversations` workers post turns back to back; only turns finished after `warmup` count."""
    latencies: list[float] = []
    errors = total = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + seconds
    connector = aiohttp.TCPConnector(limit=conversations + 8)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(conversation: int) -> None:
            nonlocal errors, total
            for turn in itertools.count():
                began = time.perf_counter()
                if began >= stop:
                    return
                try:
                    async with session.post(
                        url + "/api/messages", json=_activity(service_url, conversation, turn)
                    ) as response:
                        await response.read()
                        ok = response.status in (200, 201, 202)
                except aiohttp.ClientError:
                    ok = False
                ended = time.perf_counter()
                total += 1
                if ended >= measure_from and ended < stop:
                    if ok:
                        latencies.append(ended - began)
                    else:
                        errors += 1

        await asyncio.gather(*(worker(n) for n in range(conversations)))
    if not latencies:
        return Result(0.0, 0.0, 0.0, errors)
    latencies.sort()
    return Result(
        turns_per_s=len(latencies) / seconds,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        errors=errors,
        turns=total,
    )


async def measure(levels: Sequence[int], seconds: float, storage: str) -> dict[tuple[str, int], Result]:
    results: dict[tuple[str, int], Result] = {}
    server_cpus, other_cpus = _cpu_split()
    if other_cpus:
        os.sched_setaffinity(0, other_cpus)  # the load generator
    with tempfile.TemporaryDirectory(prefix="ragbot-bench-") as data_dir:
        async with Process("connector", cpus=other_cpus) as connector:
            for kind in SERVERS:
                async with Process(kind, data_dir, storage, cpus=server_cpus) as server:
                    for conversations in _levels(kind, levels):
                        # Warm-up (first-use imports, connections, caches), then the measured run.
                        await load(server.url, connector.url + "/", conversations, min(1.0, seconds / 3), 0.0)
                        cpu, typing = server.cpu_seconds(), await _typing_posted(connector.url)
                        result = await load(server.url, connector.url + "/", conversations, seconds, 0.0)
                        cpu, typing = server.cpu_seconds() - cpu, await _typing_posted(connector.url) - typing
                        result.cpu_ms_per_turn = cpu * 1000 / max(1, result.turns)
                        result.typing_per_turn = typing / max(1, result.turns)
                        results[(kind, conversations)] = result
            results.update(
                await measure_telemetry(
                    levels, seconds, data_dir, storage, connector.url, server_cpus, other_cpus
                )
            )
            index = _sample_index(Path(data_dir) / "sample-index")
            results.update(
                await measure_telemetry(
                    [LOCAL_LEVEL], seconds, data_dir, storage, connector.url, server_cpus, other_cpus,
                    TRACING_LOCAL, index,
                )
            )  # fmt: skip
    return results


async def measure_telemetry(
    levels: Sequence[int],
    seconds: float,
    data_dir: str,
    storage: str,
    connector_url: str,
    cpus: set[int] | None,
    other_cpus: set[int] | None,
    tracing: dict[str, tuple[str, dict[str, str] | None]] = TRACING,
    index: Path | None = None,
) -> dict[tuple[str, int], Result]:
    """ragbot with telemetry off and traced as `tracing` says, all servers up at once and loaded in
    turn, ROUNDS times each: on a shared machine the load drifts over a minute, and taking the rounds in
    alternation puts the same drift on all of them. `index`: a local index file each server answers from."""
    results: dict[tuple[str, int], Result] = {}
    async with Process("otlp", cpus=other_cpus) as otlp:  # the collector's work is not the bot's
        exported = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_BSP_SCHEDULE_DELAY": "1000",
        }
        async with contextlib.AsyncExitStack() as stack:
            servers = {}
            for kind, (_, settings) in tracing.items():
                folder = Path(data_dir) / kind
                folder.mkdir()  # one SQLite state file per server
                if index is not None:
                    shutil.copy(index, folder / index.name)
                env = None if settings is None else {**exported, **settings}
                servers[kind] = await stack.enter_async_context(
                    Process(kind, str(folder), storage, cpus=cpus, env=env)
                )
            for conversations in [level for level in levels if level > 1]:
                runs: dict[str, list[Result]] = {kind: [] for kind in servers}
                for _ in range(ROUNDS):
                    for kind, server in servers.items():
                        await load(server.url, connector_url + "/", conversations, min(1.0, seconds / 3), 0.0)
                        if tracing[kind][1] is not None:
                            await asyncio.sleep(EXPORT_WAIT_S)  # the warm-up's spans are in
                        cpu, spans = server.cpu_seconds(), await _spans_received(otlp.url)
                        result = await load(server.url, connector_url + "/", conversations, seconds / 2, 0.0)
                        result.cpu_ms_per_turn = (server.cpu_seconds() - cpu) * 1000 / max(1, result.turns)
                        if tracing[kind][1] is not None:
                            await asyncio.sleep(EXPORT_WAIT_S)  # the last batch of the run is exported
                            result.spans_per_turn = (await _spans_received(otlp.url) - spans) / max(
                                1, result.turns
                            )
                        runs[kind].append(result)
                for kind, done in runs.items():
                    results[(kind, conversations)] = _median(done)
    return results


def _sample_index(folder: Path) -> Path:
    """The sample documents indexed as `make run` indexes them (`ragbot index`, local store)."""
    env = {**os.environ, "RAGBOT_DATA_DIR": str(folder)}
    command = [sys.executable, "-m", "ragbot", "index", str(SAMPLES)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
    return folder / "index.sqlite"


def _median(runs: list[Result]) -> Result:
    """The run with the median turns/s (its latencies with it), with the median CPU and spans per turn
    of all runs (each median on its own: one run's hiccup moves neither)."""
    middle = sorted(runs, key=lambda r: r.turns_per_s)[len(runs) // 2]
    middle.cpu_ms_per_turn = statistics.median(r.cpu_ms_per_turn for r in runs)
    middle.spans_per_turn = statistics.median(r.spans_per_turn for r in runs)
    return middle


def _levels(kind: str, levels: Sequence[int]) -> list[int]:
    """The typing variants skip one conversation: there the 10 ms answer is the whole turn."""
    return [level for level in levels if level > 1 or not kind.endswith("-typing")]


async def _spans_received(otlp_url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(otlp_url + "/counts") as response:
        return int((await response.json())["spans"])


async def _typing_posted(connector_url: str) -> int:
    """How many typing activities the fake connector has taken so far."""
    async with aiohttp.ClientSession() as session, session.get(connector_url + "/posted") as response:
        return int((await response.json()).get("typing", 0))


def _cpu_split() -> tuple[set[int] | None, set[int] | None]:
    """One CPU for the server under test, the others for the load generator and the fake connector,
    so that neither takes time from the other (each server is a single Python process either way)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def _against_stock(figure: str, baseline: str, ragbot: Result, stock: Result, note: str) -> Row:
    if ragbot.errors or stock.errors:
        note += f"; errors ragbot {ragbot.errors}, stock {stock.errors}"
    return Row(
        bench=BENCH,
        figure=figure,
        value=ragbot.turns_per_s,
        unit="turns/s",
        baseline=baseline,
        baseline_value=stock.turns_per_s,
        note=note,
    )


def _tracing_rows(
    results: dict[tuple[str, int], Result],
    level: int,
    tracing: dict[str, tuple[str, dict[str, str] | None]],
    off: str,
) -> list[Row]:
    """One row per traced server of `tracing`, against its server `off` (telemetry off), same run."""
    rows: list[Row] = []
    untraced = results.get((off, level))
    for kind, (label, settings) in tracing.items():
        traced = results.get((kind, level))
        figure = f"ragbot, {label}, OTLP export, {level} conv."
        if traced and untraced and settings is not None:
            note = (
                f"median of {ROUNDS} alternating runs; server CPU/turn {traced.cpu_ms_per_turn:.2f} ms, "
                f"off {untraced.cpu_ms_per_turn:.2f} ms; {traced.spans_per_turn:.2f} spans/turn "
                "received; "
                f"p50/p99 {traced.p50_ms:.1f}/{traced.p99_ms:.1f} ms"
            )
            rows.append(_against_stock(figure, "ragbot, telemetry off", traced, untraced, note))
    return rows


def to_rows(results: dict[tuple[str, int], Result], storage: str) -> list[Row]:
    rows: list[Row] = []
    levels = sorted({level for _, level in results})
    for level in levels:
        stock, ragbot, bare = (results[(kind, level)] for kind in ("stock", "ragbot", "bare"))
        note = (
            f"server CPU/turn ragbot {ragbot.cpu_ms_per_turn:.2f} ms, stock {stock.cpu_ms_per_turn:.1f} ms; "
            f"p50/p99 ragbot {ragbot.p50_ms:.1f}/{ragbot.p99_ms:.1f} ms, "
            f"stock {stock.p50_ms:.0f}/{stock.p99_ms:.0f} ms"
        )
        figure = f"ragbot turns/s, {level} conv. ({storage} memory)"
        rows.append(_against_stock(figure, "stock CloudAdapter echo", ragbot, stock, note))
        stock_typing, typing = results.get(("stock-typing", level)), results.get(("ragbot-typing", level))
        if stock_typing and typing:
            note = (
                f"{TYPING_ANSWER_S * 1000:.0f} ms answers; typing sent on {typing.typing_per_turn:.0%} of "
                f"turns (stock {stock_typing.typing_per_turn:.0%}); server CPU/turn "
                f"{typing.cpu_ms_per_turn:.2f} ms (stock {stock_typing.cpu_ms_per_turn:.1f}); "
                f"p50/p99 {typing.p50_ms:.1f}/{typing.p99_ms:.1f} ms"
            )
            figure = f"ragbot with typing indicator, {level} conv."
            rows.append(_against_stock(figure, "stock with ShowTypingMiddleware", typing, stock_typing, note))
        for table, off in ((TRACING, "ragbot-untraced"), (TRACING_LOCAL, "ragbot-local-untraced")):
            rows += _tracing_rows(results, level, table, off)
        agents, stock_agents = results.get(("agents", level)), results.get(("stock-agents", level))
        if agents and stock_agents:
            note = (
                f"server CPU/turn: Agents host {agents.cpu_ms_per_turn:.2f} ms, botbuilder host "
                f"{ragbot.cpu_ms_per_turn:.2f} ms; p50/p99 {agents.p50_ms:.1f}/{agents.p99_ms:.1f} ms"
            )
            figure = f"ragbot on the Agents SDK host, {level} conv."
            rows.append(_against_stock(figure, "ragbot on the botbuilder host", agents, ragbot, note))
            note = (
                f"server CPU/turn Agents host {agents.cpu_ms_per_turn:.2f} ms, stock Agents echo "
                f"{stock_agents.cpu_ms_per_turn:.1f} ms; stock p50/p99 "
                f"{stock_agents.p50_ms:.0f}/{stock_agents.p99_ms:.0f} ms"
            )
            rows.append(
                _against_stock(figure, "stock Agents SDK echo (AgentApplication)", agents, stock_agents, note)
            )
        rows.append(
            Row(
                bench=BENCH,
                figure=f"ragbot vs bare aiohttp JSON, {level} conv.",
                value=ragbot.turns_per_s,
                unit="turns/s",
                baseline="bare aiohttp handler",
                baseline_value=bare.turns_per_s,
                note=f"server CPU/request bare {bare.cpu_ms_per_turn:.2f} ms; bare p50 {bare.p50_ms:.1f} ms",
            )
        )
    return rows


def rows(quick: bool = False, storage: str = "sqlite") -> list[Row]:
    levels = (32,) if quick else (1, 32, 128)
    seconds = 3.0 if quick else 8.0
    return to_rows(asyncio.run(measure(levels, seconds, storage)), storage)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="32 conversations only, 3 s per server")
    parser.add_argument(
        "--storage",
        choices=("sqlite", "memory"),
        default="sqlite",
        help="ragbot's memory store (see bench.state_stores for the shared ones)",
    )
    args = parser.parse_args()
    print(render(rows(quick=args.quick, storage=args.storage)))


if __name__ == "__main__":
    main()
