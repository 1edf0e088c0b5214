"""The one telemetry set-up: OpenTelemetry SDK providers and exporters, from the standard variables.

- OTLP over http/protobuf when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its ``_TRACES_`` / ``_METRICS_``
  form) is set: traces and metrics to any OpenTelemetry collector or backend.
- Azure Monitor (Application Insights) when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, through
  the azure-monitor-opentelemetry distro (requests, dependencies, customMetrics, the log lines as
  traces with secrets masked as on stderr; Live Metrics). ``OTEL_LOGS_EXPORTER=none`` keeps the logs.
- Neither: nothing is installed or imported and every span helper in `rag.telemetry` stays a no-op.

Both may be set: one tracer and one meter provider feed both. Traced too: every aiohttp client session
from `rag.http_sessions` (a CLIENT span per request, W3C ``traceparent`` sent) and the Azure SDK clients
(Azure AI Search, Blob, Cosmos DB) through azure-core's OpenTelemetry tracing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag import telemetry
from rag.http_sessions import add_trace_config

log = logging.getLogger(__name__)

OFF = "none"


class TelemetrySettings(BaseSettings):
    """OpenTelemetry's own variable names (``OTEL_*``), Application Insights', and one of ours."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    trace_content: bool = Field(default=False, validation_alias="RAGBOT_TRACE_CONTENT")
    connection_string: str = Field(
        default="",
        validation_alias="APPLICATIONINSIGHTS_CONNECTION_STRING",
        description="where to send, not a credential (Microsoft's word); keys: Entra ID sign-in",
    )
    otlp_endpoint: str = Field(default="", validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otlp_traces_endpoint: str = Field(default="", validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    otlp_metrics_endpoint: str = Field(default="", validation_alias="OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    otlp_protocol: Literal["http/protobuf"] = Field(
        default="http/protobuf",
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_PROTOCOL"),
        description="the OTLP exporter shipped is http/protobuf",
    )
    traces_exporter: str = Field(default="", validation_alias="OTEL_TRACES_EXPORTER")
    metrics_exporter: str = Field(default="", validation_alias="OTEL_METRICS_EXPORTER")
    service_name: str = Field(default="ragbot", validation_alias="OTEL_SERVICE_NAME")
    sdk_disabled: bool = Field(default=False, validation_alias="OTEL_SDK_DISABLED")

    def otlp_url(self, signal: Literal["traces", "metrics"]) -> str | None:
        """Where OTLP sends `signal`, as the specification derives it; None when OTLP is not set."""
        exporter = self.traces_exporter if signal == "traces" else self.metrics_exporter
        if self.sdk_disabled or exporter.strip().lower() == OFF:
            return None
        specific = self.otlp_traces_endpoint if signal == "traces" else self.otlp_metrics_endpoint
        if specific:
            return specific
        if self.otlp_endpoint:
            return f"{self.otlp_endpoint.rstrip('/')}/v1/{signal}"
        return None

    @property
    def azure_monitor(self) -> bool:
        return bool(self.connection_string) and not self.sdk_disabled

    def describe(self) -> str:
        """One line for the start-up log and `ragbot config`: where telemetry goes."""
        signals: tuple[Literal["traces", "metrics"], ...] = ("traces", "metrics")
        places = [f"OTLP {signal} to {url}" for signal in signals if (url := self.otlp_url(signal))]
        if self.azure_monitor:
            places.append("Azure Monitor (Application Insights)")
        return (
            ", ".join(places)
            or "off (no OTEL_EXPORTER_OTLP_ENDPOINT or APPLICATIONINSIGHTS_CONNECTION_STRING)"
        )


def setup(
    settings: TelemetrySettings, log_filters: Sequence[logging.Filter] = ()
) -> Callable[[], None] | None:
    """Install the providers and exporters `settings` ask for; returns the flush-and-stop to call at
    exit, or None when nothing is exported (and then nothing was imported). `log_filters` (the secret
    masking of the log lines) also guard the log records sent to Application Insights."""
    traces_url, metrics_url = settings.otlp_url("traces"), settings.otlp_url("metrics")
    if not (traces_url or metrics_url or settings.azure_monitor):
        return None
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: settings.service_name, SERVICE_VERSION: version("ragbot")})
    processors: list[SpanProcessor] = []
    readers: list[MetricReader] = []
    if traces_url:
        processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    if metrics_url:
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=metrics_url)))
    if settings.azure_monitor:
        from azure.monitor.opentelemetry import configure_azure_monitor

        # every turn, whole, unless OTEL_TRACES_SAMPLER says otherwise: the distro's own default keeps
        # 5 spans a second and then drops a turn's steps while keeping the turn
        sampling = {} if "OTEL_TRACES_SAMPLER" in os.environ else {"sampling_ratio": 1.0}
        root = logging.getLogger()
        ours = set(root.handlers)
        configure_azure_monitor(
            connection_string=settings.connection_string,
            **sampling,
            resource=resource,
            span_processors=processors,
            metric_readers=readers,
            # the bot's own spans and the traced sessions cover its I/O; these would trace nothing
            # (not installed) or MSAL's token fetches outside any turn
            instrumentation_options={
                name: {"enabled": False}
                for name in ("django", "fastapi", "flask", "psycopg2", "requests", "urllib", "urllib3")
            },
        )
        for handler in set(root.handlers) - ours:  # log records go to the `traces` table: masked too
            for log_filter in log_filters:
                handler.addFilter(log_filter)
    else:
        from azure.core.settings import settings as azure_core
        from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan

        if processors:  # else spans stay the API's no-op ones: nothing made that nobody reads
            tracer_provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER applies
            for processor in processors:
                tracer_provider.add_span_processor(processor)
            trace.set_tracer_provider(tracer_provider)
            azure_core.tracing_implementation = OpenTelemetrySpan
        if readers:
            metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    add_trace_config(telemetry.http_trace_config)
    telemetry.enable(content=settings.trace_content)
    log.info("telemetry: %s", settings.describe())
    if settings.trace_content:
        log.warning("RAGBOT_TRACE_CONTENT is on: spans carry users' questions and search queries")

    def shutdown() -> None:
        """Export what is buffered, then stop the exporters' threads."""
        telemetry.disable()
        for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
            stop = getattr(provider, "shutdown", None)
            if stop is not None:
                stop()

    return shutdown
