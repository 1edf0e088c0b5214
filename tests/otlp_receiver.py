"""A loopback OTLP/HTTP receiver: what an OpenTelemetry collector does with `POST /v1/traces` and
`POST /v1/metrics` (http/protobuf), decoded with the official protobuf messages and kept for asserts.

Used by tests/telemetry (a real `ragbot serve` exporting to it) and by the throughput bench."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"
MAX_BODY = 16 * 1024**2


class OtlpReceiver:
    """Every span and metric received, flattened: `spans` as (resource attributes, span message),
    `metrics` as metric messages. With `keep=False` (a long bench) they are decoded and counted only."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.spans: list[tuple[dict[str, Any], Any]] = []
        self.metrics: list[Any] = []
        self.counts = {"spans": 0, "metrics": 0}
        self.exports = 0
        self.url = ""
        self._changed = asyncio.Event()

    async def _read(self, request: web.Request) -> bytes:
        if request.content_type != PROTOBUF:
            raise web.HTTPUnsupportedMediaType(text=f"expected {PROTOBUF}, got {request.content_type}")
        body = await request.read()
        return gzip.decompress(body) if request.headers.get("Content-Encoding") == "gzip" else body

    async def traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await self._read(request))
        for resource_spans in export.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                self.counts["spans"] += len(scope_spans.spans)
                if self.keep:
                    self.spans.extend((resource, span) for span in scope_spans.spans)
        return self._ok(ExportTraceServiceResponse())

    async def metrics_(self, request: web.Request) -> web.Response:
        export = ExportMetricsServiceRequest.FromString(await self._read(request))
        for resource_metrics in export.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                self.counts["metrics"] += len(scope_metrics.metrics)
                if self.keep:
                    self.metrics.extend(scope_metrics.metrics)
        return self._ok(ExportMetricsServiceResponse())

    def _ok(self, message: Any) -> web.Response:
        self.exports += 1
        self._changed.set()
        return web.Response(body=message.SerializeToString(), content_type=PROTOBUF)

    async def counted(self, request: web.Request) -> web.Response:
        return web.json_response(self.counts)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/v1/traces", self.traces)
        app.router.add_post("/v1/metrics", self.metrics_)
        app.router.add_get("/counts", self.counted)
        return app

    async def wait_for(self, predicate: Callable[[OtlpReceiver], bool], within: float = 15.0) -> None:
        async with asyncio.timeout(within):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    def span_names(self) -> list[str]:
        return [span.name for _, span in self.spans]

    def metric_names(self) -> set[str]:
        return {metric.name for metric in self.metrics}


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP KeyValue list -> dict of plain values (strings, numbers, booleans, lists of them)."""
    return {pair.key: any_value(pair.value) for pair in pairs}


def any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[OtlpReceiver]:
    """A receiver on 127.0.0.1 (a free port); its `url` is what OTEL_EXPORTER_OTLP_ENDPOINT takes."""
    receiver = OtlpReceiver()
    server = TestServer(receiver.app(), host="127.0.0.1")
    await server.start_server()
    receiver.url = str(server.make_url("")).rstrip("/")
    try:
        yield receiver
    finally:
        await server.close()
