"""One setting, APPLICATIONINSIGHTS_CONNECTION_STRING, and a real `ragbot serve` sends its turn to
Application Insights: a loopback fake of the ingestion endpoint (Breeze, `POST /v2.1/track`) receives the
turn as a Request envelope, its steps as RemoteDependency envelopes of the same operation id, the
metrics and the log lines. An OTLP endpoint set beside it gets the same spans and metrics. Every other
address the Azure Monitor distro might call goes to a loopback proxy that must stay silent: nothing
leaves the machine."""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.bot.fakes import FakeConnector, activity
from tests.loopback import serve
from tests.otlp_receiver import otlp_receiver
from tests.reliability.local_index import environment
from tests.reliability.processes import start_serve
from tests.telemetry.conftest import QUESTION

TRACE_ID = "5cf92f3577b34da6a3ce929d0e0e4736"
KEY = "00000000-0000-0000-0000-000000000001"
SAS = "sv2026sas0signature0value"


class Ingestion:
    """Application Insights' ingestion endpoint: envelopes in, `itemsAccepted` out."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        if request.path.endswith("/track"):
            body = await request.read()
            if request.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            envelopes = json.loads(body)
            self.envelopes.extend(envelopes)
            self.changed.set()
            return web.json_response(
                {"itemsReceived": len(envelopes), "itemsAccepted": len(envelopes), "errors": []}
            )
        return web.json_response({})  # Live Metrics pings and posts

    def of(self, base_type: str) -> list[dict[str, Any]]:
        return [e for e in self.envelopes if e.get("data", {}).get("baseType") == base_type]

    async def wait_for(self, done: Any, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while not done():
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def silent_proxy() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A proxy that answers nobody and records the first line of every request it gets."""
    asked: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await reader.readline())
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", asked
    finally:
        server.close()
        await server.wait_closed()


async def test_one_setting_sends_the_turn_and_its_metrics_to_application_insights(
    local_index: Path, aiohttp_server: Any, tmp_path: Path
) -> None:
    connector = FakeConnector()
    service_url = str((await aiohttp_server(connector.app)).make_url("")).rstrip("/") + "/"
    ingestion = Ingestion()
    async with serve(ingestion.handle) as url, silent_proxy() as (proxy, asked), otlp_receiver() as otlp:
        env = environment(
            local_index,
            APPLICATIONINSIGHTS_CONNECTION_STRING=(
                f"InstrumentationKey={KEY};IngestionEndpoint={url}/;LiveEndpoint={url}/"
            ),
            # no usage reports to Microsoft, no remote configuration, no Azure VM metadata probe: tests
            # reach loopback only (anything else would go to the silent proxy, checked below)
            APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
            APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED="true",
            OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="otel",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url,
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_METRIC_EXPORT_INTERVAL="500",
            OTEL_BLRP_SCHEDULE_DELAY="100",
            HTTP_PROXY=proxy,
            HTTPS_PROXY=proxy,
            http_proxy=proxy,
            https_proxy=proxy,
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            TMPDIR=str(tmp_path),  # the exporter's retry storage
        )
        process, server = await start_serve(env, tmp_path / "serve.log")
        try:
            turn = activity(service_url, QUESTION, channel="emulator", conversation_type=None)
            headers = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{server}/api/messages", json=turn, headers=headers) as response,
            ):
                assert response.status == 200, await response.text()
            async with aiohttp.ClientSession() as session:
                await (await session.get(f"{server}/healthz?sig={SAS}")).release()  # in the access log
            await ingestion.wait_for(
                lambda: (
                    any(
                        e["data"]["baseData"].get("name") == "turn message"
                        for e in ingestion.of("RequestData")
                    )
                    and any(
                        m.get("name") == "ragbot.turns"
                        for e in ingestion.of("MetricData")
                        for m in e["data"]["baseData"]["metrics"]
                    )
                )
            )
            await otlp.wait_for(
                lambda r: "turn message" in r.span_names() and "ragbot.turns" in r.metric_names()
            )
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()

    (request,) = [e for e in ingestion.of("RequestData") if e["data"]["baseData"]["name"] == "turn message"]
    assert request["iKey"] == KEY
    assert request["tags"]["ai.operation.id"] == TRACE_ID
    assert request["data"]["baseData"]["properties"]["ragbot.outcome"] == "answered"
    steps = {
        e["data"]["baseData"]["name"]
        for e in ingestion.of("RemoteDependencyData")
        if e["tags"].get("ai.operation.id") == TRACE_ID
    }
    assert {"ragbot.memory.load", "ragbot.retrieve", "ragbot.generate", "ragbot.render"} <= steps
    assert QUESTION not in json.dumps(ingestion.envelopes)
    assert asked == [], f"something tried to leave the machine: {asked}"
    # the log lines go too (the `traces` table), masked as on stderr
    logged = [e["data"]["baseData"]["message"] for e in ingestion.of("MessageData")]
    assert "answer backend local is ready" in logged
    (probe,) = [line for line in logged if "/healthz?" in line]
    assert SAS not in probe and "sig=***" in probe
