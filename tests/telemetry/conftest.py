"""Fixtures of the telemetry suite: the bot suite's app-on-loopback fixtures, and telemetry switched on
into in-memory exporters (the SDK's own) for one test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler

from rag import http_sessions, telemetry
from tests.bot.conftest import bot_host, connector, make_bot  # noqa: F401  (fixtures shared with the bot suite)
from tests.local_index import write_passages

QUESTION = "How do I reset my VPN token on a laptop?"
PASSAGES = [
    (
        "it/vpn.md",
        "VPN tokens",
        "To reset your VPN token on a laptop, open the VPN client and choose Reset token.",
    ),
    ("it/printer.md", "Printers", "To add a printer, open Settings, then Printers, then Add a printer."),
]


@dataclass
class Recorded:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in self.spans()]}"
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [
            s for s in self.spans() if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]

    def metric_points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("AZURE_", "RAGBOT_", "OTEL_", "APPLICATIONINSIGHTS_", "MicrosoftApp")):
            monkeypatch.delenv(name)
    yield


@pytest.fixture(scope="package")
def local_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    passages = [(filepath, title, text, ()) for filepath, title, text in PASSAGES]
    return write_passages(tmp_path_factory.mktemp("traced-index"), passages)


def recording(
    monkeypatch: pytest.MonkeyPatch, *, content: bool = False, sampler: Sampler | None = None
) -> Iterator[Recorded]:
    """Telemetry on, as `bot.telemetry.setup` turns it on, into memory instead of OTLP."""
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider(sampler=sampler)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(http_sessions, "_trace_configs", [])
    http_sessions.add_trace_config(telemetry.http_trace_config)
    telemetry.enable(content=content, tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Recorded(exporter, reader)
    finally:
        telemetry.disable()
        tracer_provider.shutdown()
        meter_provider.shutdown()


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    yield from recording(monkeypatch)


@pytest.fixture
def traced_with_content(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    """As with RAGBOT_TRACE_CONTENT=true."""
    yield from recording(monkeypatch, content=True)


@pytest.fixture
def sampled_out(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    """As with OTEL_TRACES_SAMPLER=parentbased_traceidratio and a turn the ratio left out."""
    yield from recording(monkeypatch, sampler=ParentBased(ALWAYS_OFF))
