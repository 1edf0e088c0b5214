"""Traces and metrics through the OpenTelemetry API only: the thin helpers the turn logic calls.

Telemetry is off until `bot.telemetry.setup` installs an SDK with an exporter and calls :func:`enable`.
While off, every helper returns at once (a shared no-op span, the iterator it was given): no span
objects, no context switches, no SDK imported.

Attribute names: the GenAI semantic conventions (``gen_ai.*``) on model calls, ``ragbot.*`` for the
rest. User text (questions, search queries) is recorded only with ``RAGBOT_TRACE_CONTENT=true``.
"""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import aiohttp
from opentelemetry import context, metrics, propagate, trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode

from rag.contract import Answer
from rag.errors import ContentFiltered

T = TypeVar("T")
# A span attribute's value as OpenTelemetry accepts it. Spelled here because opentelemetry-api 1.45.0
# defines its own `AttributeValue` in a way mypy does not take as a type (1.45.1 does).
AttributeValue = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]
Attributes = Mapping[str, AttributeValue]

_OFF: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)

SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
TOKENS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144)


class _Instruments:
    """The tracer and the metric instruments, from the providers telemetry was enabled with."""

    def __init__(self, tracer_provider: trace.TracerProvider, meter_provider: metrics.MeterProvider) -> None:
        self.tracer = tracer_provider.get_tracer("ragbot")
        meter = meter_provider.get_meter("ragbot")
        # counted in a plain dict and read at export: a turn pays a dict increment, not an SDK measurement
        self.turn_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        meter.create_observable_counter(
            "ragbot.turns", [self._observe_turns], "{turn}", "questions answered, by outcome"
        )
        self.turn_duration = meter.create_histogram(
            "ragbot.turn.duration",
            "s",
            "from the activity to the last reply",
            explicit_bucket_boundaries_advisory=SECONDS,
        )
        self.time_to_first_token = meter.create_histogram(
            "ragbot.turn.time_to_first_token",
            "s",
            "streamed answers: from the question reaching the answer backend to the first text shown",
            explicit_bucket_boundaries_advisory=SECONDS,
        )
        self.retries = meter.create_counter("ragbot.upstream.retries", "{retry}", "upstream calls retried")
        self.throttled = meter.create_counter("ragbot.upstream.throttled", "{response}", "429s from upstream")
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            "{token}",
            "tokens per model call",
            explicit_bucket_boundaries_advisory=TOKENS,
        )
        self.feedback = meter.create_counter("ragbot.feedback", "{rating}", "thumbs up and down on answers")
        self.index_chunks = meter.create_gauge("ragbot.index.chunks", "{chunk}", "chunks in the local index")

    def _observe_turns(self, options: metrics.CallbackOptions) -> list[metrics.Observation]:
        """Runs on the exporter's thread: a copy of the counts (one C-level call, safe under the GIL)."""
        return [
            metrics.Observation(count, {"ragbot.outcome": result, "ragbot.channel": channel})
            for (result, channel), count in list(self.turn_counts.items())
        ]


class _Switch:
    on: _Instruments | None = None
    content = False


_switch = _Switch()


def enable(
    *,
    content: bool = False,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> None:
    """Start recording to the given providers (default: the global ones `bot.telemetry` installed);
    `content` records user text too."""
    _switch.on = _Instruments(
        tracer_provider or trace.get_tracer_provider(), meter_provider or metrics.get_meter_provider()
    )
    _switch.content = content


def disable() -> None:
    _switch.on, _switch.content = None, False


def enabled() -> bool:
    return _switch.on is not None


def content_enabled() -> bool:
    """Whether spans may carry user text (RAGBOT_TRACE_CONTENT=true)."""
    return _switch.on is not None and _switch.content


def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    carrier: Mapping[str, str] | None = None,
) -> AbstractContextManager[Span]:
    """A span current for the `with` block; `carrier` (inbound HTTP headers) continues the caller's
    W3C trace. An exception leaving the block marks the span failed."""
    if _switch.on is None:
        return _OFF
    if carrier is not None:
        parent = propagate.extract(carrier)
    elif (unsampled := _unsampled()) is not None:
        return nullcontext(unsampled)
    else:
        parent = None
    return _switch.on.tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes)


def _unsampled() -> Span | None:
    """The current span when it belongs to a trace the sampler left out: its steps would be left out
    too (parent-based sampling), so none is made; what is sent on still names the trace."""
    current = trace.get_current_span()
    return current if current.get_span_context().is_valid and not current.is_recording() else None


def annotate(attributes: Attributes) -> None:
    """Add attributes to the current span (the turn's, in turn logic)."""
    if _switch.on is not None:
        trace.get_current_span().set_attributes(attributes)


def traced(
    name: str,
    items: AsyncIterator[T],
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    observe: Callable[[Span, T], None] | None = None,
) -> AsyncIterator[T]:
    """`items` inside a span that is current only while `items` runs, not while its consumer does (an
    async generator that yields inside ``with span`` would leak its context into the consumer)."""
    if _switch.on is None or _unsampled() is not None:
        return items
    return _traced(_switch.on.tracer, name, items, attributes, kind, observe)


async def _traced(
    tracer: trace.Tracer,
    name: str,
    items: AsyncIterator[T],
    attributes: Attributes | None,
    kind: SpanKind,
    observe: Callable[[Span, T], None] | None,
) -> AsyncIterator[T]:
    current = tracer.start_span(name, kind=kind, attributes=attributes)
    inside = trace.set_span_in_context(current)
    try:
        while True:
            token = context.attach(inside)
            try:
                item = await anext(items)
            except StopAsyncIteration:
                break
            finally:
                context.detach(token)
            if observe is not None:
                observe(current, item)
            yield item
    except Exception as exc:
        current.record_exception(exc)
        current.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()
        current.end()


# --- outbound HTTP -------------------------------------------------------------------------------


def http_trace_config() -> aiohttp.TraceConfig:
    """The hooks `rag.http_sessions` gives every session: one CLIENT span per request (method, server,
    the URL without its query, status) that sends the W3C ``traceparent`` on. A few attributes, no
    per-request metric: the bench holds what a traced turn may cost."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_request_started)
    config.on_request_end.append(_request_ended)
    config.on_request_exception.append(_request_failed)
    return config


async def _request_started(
    session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestStartParams
) -> None:
    if (on := _switch.on) is None:
        return
    if _unsampled() is not None:
        propagate.inject(params.headers)
        return
    url = params.url
    ctx.span = on.tracer.start_span(
        params.method,
        kind=SpanKind.CLIENT,
        attributes={
            "http.request.method": params.method,
            "server.address": url.host or "",
            "server.port": url.explicit_port or url.port or 0,
            "url.full": str(url.with_query(None).with_fragment(None).with_user(None)),
        },
    )
    propagate.inject(params.headers, context=trace.set_span_in_context(ctx.span))


async def _request_ended(
    session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestEndParams
) -> None:
    span: Span | None = getattr(ctx, "span", None)
    if span is not None:
        status = params.response.status
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            span.set_status(Status(StatusCode.ERROR, str(status)))
        span.end()


async def _request_failed(
    session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestExceptionParams
) -> None:
    span: Span | None = getattr(ctx, "span", None)
    if span is not None:
        span.set_attribute("error.type", type(params.exception).__qualname__)
        span.set_status(Status(StatusCode.ERROR, type(params.exception).__qualname__))
        span.end()


# --- turns ------------------------------------------------------------------------------------


def outcome(answer: Answer | None, failure: BaseException | None = None) -> str:
    """answered, refused (nothing relevant found), filtered (content filter) or failed."""
    if failure is not None:
        return "filtered" if isinstance(failure, ContentFiltered) else "failed"
    if answer is None:
        return "failed"
    if answer.finish_reason == "content_filter":
        return "filtered"
    return "refused" if answer.refused else "answered"


def record_turn(result: str, channel: str, started: float) -> None:
    """One question turn ended with `result` (see :func:`outcome`); `started` is its perf_counter()."""
    if (on := _switch.on) is None:
        return
    trace.get_current_span().set_attribute("ragbot.outcome", result)
    on.turn_counts[(result, channel)] += 1
    on.turn_duration.record(
        time.perf_counter() - started, {"ragbot.outcome": result, "ragbot.channel": channel}
    )


def record_first_token(started: float, channel: str) -> None:
    """The first text of a streamed answer was shown (an answer sent whole has no first token: its
    time is the turn's)."""
    if (on := _switch.on) is not None:
        on.time_to_first_token.record(time.perf_counter() - started, {"ragbot.channel": channel})


def record_feedback(reaction: str) -> None:
    if (on := _switch.on) is not None:
        on.feedback.add(1, {"ragbot.reaction": reaction})


def record_index_size(chunks: int) -> None:
    if (on := _switch.on) is not None:
        on.index_chunks.set(chunks)


def record_retry(peer: str, status: int | None) -> None:
    """An upstream call is retried; `status` None for a connection fault or timeout."""
    if (on := _switch.on) is not None:
        on.retries.add(1, {"ragbot.peer": peer, "http.response.status_code": status or 0})


def record_throttled(peer: str) -> None:
    if (on := _switch.on) is not None:
        on.throttled.add(1, {"ragbot.peer": peer})


# --- model calls (GenAI semantic conventions) ---------------------------------------------------


def model_labels(operation: str, system: str, model: str) -> dict[str, str]:
    """Who was asked what: ``gen_ai.operation.name`` (chat, embeddings), ``gen_ai.system``
    (az.ai.openai, openai) and ``gen_ai.request.model`` (the deployment)."""
    return {"gen_ai.operation.name": operation, "gen_ai.system": system, "gen_ai.request.model": model}


def model_call(labels: Mapping[str, str], request: Mapping[str, Any]) -> AbstractContextManager[Span]:
    """The CLIENT span of one model call, named ``{operation} {model}`` as the conventions ask; give the
    response to :func:`observe_response`."""
    if _switch.on is None:
        return _OFF
    if (unsampled := _unsampled()) is not None:
        return nullcontext(unsampled)
    return span(_model_span_name(labels), _request_attributes(labels, request), kind=SpanKind.CLIENT)


def model_stream(
    labels: Mapping[str, str], request: Mapping[str, Any], chunks: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    """The span of a streamed call: usage and finish reason are read from the chunks as they pass."""
    if _switch.on is None:
        return chunks
    if (unsampled := _unsampled()) is not None:
        return _counted(unsampled, chunks, labels)
    return traced(
        _model_span_name(labels),
        chunks,
        _request_attributes(labels, request),
        kind=SpanKind.CLIENT,
        observe=lambda current, chunk: observe_response(current, chunk, labels),
    )


async def _counted(
    current: Span, chunks: AsyncIterator[dict[str, Any]], labels: Mapping[str, str]
) -> AsyncIterator[dict[str, Any]]:
    """The chunks of a call in an unsampled trace: no span, the token metric still counted."""
    try:
        async for chunk in chunks:
            observe_response(current, chunk, labels)
            yield chunk
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _model_span_name(labels: Mapping[str, str]) -> str:
    return f"{labels['gen_ai.operation.name']} {labels['gen_ai.request.model']}"


def _request_attributes(labels: Mapping[str, str], request: Mapping[str, Any]) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = dict(labels)
    for name in ("max_tokens", "temperature", "top_p"):
        value = request.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[f"gen_ai.request.{name}"] = value
    return attributes


def observe_response(current: Span, payload: Mapping[str, Any], labels: Mapping[str, str]) -> None:
    """Response attributes from a completion (or one stream chunk): model, id, finish reasons, usage;
    the token counts also as the ``gen_ai.client.token.usage`` metric (every call, sampled or not)."""
    if (on := _switch.on) is None:
        return
    usage = payload.get("usage")
    if isinstance(usage, dict):
        for kind, key in (("input", "prompt_tokens"), ("output", "completion_tokens")):
            count = usage.get(key)
            if isinstance(count, int) and not isinstance(count, bool):
                on.token_usage.record(count, {**labels, "gen_ai.token.type": kind})
                current.set_attribute(f"gen_ai.usage.{kind}_tokens", count)
    if not current.is_recording():
        return
    for key, attribute in (("model", "gen_ai.response.model"), ("id", "gen_ai.response.id")):
        if isinstance(payload.get(key), str) and payload[key]:
            current.set_attribute(attribute, payload[key])
    choices = payload.get("choices")
    if isinstance(choices, list):
        reasons = [str(c["finish_reason"]) for c in choices if isinstance(c, dict) and c.get("finish_reason")]
        if reasons:
            current.set_attribute("gen_ai.response.finish_reasons", reasons)
