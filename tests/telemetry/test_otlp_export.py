"""A real `ragbot serve` with OTEL_EXPORTER_OTLP_ENDPOINT set exports one turn's spans and the metrics to a
loopback OTLP/HTTP receiver (protobuf decoded with the official messages); with nothing set it exports
nothing and installs nothing."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import aiohttp

from bot.telemetry import TelemetrySettings, setup
from rag import telemetry
from tests.bot.fakes import FakeConnector, activity
from tests.otlp_receiver import attributes, otlp_receiver
from tests.reliability.local_index import environment
from tests.reliability.processes import start_serve
from tests.telemetry.conftest import QUESTION

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def test_ragbot_serve_sends_traces_and_metrics_to_an_otlp_endpoint(
    local_index: Path, aiohttp_server: Any, tmp_path: Path
) -> None:
    connector = FakeConnector()
    service_url = str((await aiohttp_server(connector.app)).make_url("")).rstrip("/") + "/"
    async with otlp_receiver() as receiver:
        env = environment(
            local_index,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_SERVICE_NAME="ragbot-under-test",
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_METRIC_EXPORT_INTERVAL="300",
        )
        process, url = await start_serve(env, tmp_path / "serve.log")
        try:
            turn = activity(service_url, QUESTION, channel="emulator", conversation_type=None)
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{url}/api/messages", json=turn, headers={"traceparent": TRACEPARENT}
                ) as response,
            ):
                assert response.status == 200, await response.text()
            await receiver.wait_for(
                lambda r: "turn message" in r.span_names() and "ragbot.turns" in r.metric_names()
            )
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()

    resource, span = next(
        (resource, span) for resource, span in receiver.spans if span.name == "turn message"
    )
    assert resource["service.name"] == "ragbot-under-test"
    assert span.trace_id.hex() == TRACE_ID
    assert attributes(span.attributes)["ragbot.outcome"] == "answered"
    in_trace = {s.name for _, s in receiver.spans if s.trace_id.hex() == TRACE_ID}
    assert {"ragbot.memory.load", "ragbot.retrieve", "ragbot.generate", "ragbot.render", "POST"} <= in_trace
    assert {"ragbot.turns", "ragbot.turn.duration"} <= receiver.metric_names()
    log = (tmp_path / "serve.log").read_text()
    assert f"telemetry: OTLP traces to {receiver.url}/v1/traces" in log


def test_nothing_set_installs_nothing() -> None:
    assert setup(TelemetrySettings(_env_file=None)) is None  # type: ignore[call-arg]
    assert not telemetry.enabled()
    with telemetry.span("ragbot.anything") as span:
        assert not span.is_recording()
