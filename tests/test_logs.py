from __future__ import annotations

import io
import json
import logging

import pytest

from ragbot.logs import LogSettings, setup_logging

SECRET = "s3cr3t-key-value-0123456789"


@pytest.fixture
def captured():
    buffer = io.StringIO()
    yield buffer
    logging.getLogger().handlers.clear()


def test_configured_secret_and_credentials_never_printed(captured: io.StringIO) -> None:
    setup_logging(LogSettings(format="text"), secrets=[SECRET], stream=captured)
    log = logging.getLogger("ragbot.test")
    log.info("calling with key %s", SECRET)
    log.warning("headers: {'api-key': 'abcdef123456'} Authorization: Bearer eyJhbGciOi.payload.sig")
    try:
        raise RuntimeError(f"upstream said password={SECRET}")
    except RuntimeError:
        log.exception("failed")
    text = captured.getvalue()
    assert SECRET not in text
    assert "abcdef123456" not in text
    assert "eyJhbGciOi" not in text
    assert text.count("***") >= 4
    assert "calling with key" in text and "RuntimeError" in text


def test_json_format_one_object_per_line(captured: io.StringIO) -> None:
    setup_logging(LogSettings(format="json"), secrets=[SECRET], stream=captured)
    logging.getLogger("ragbot.test").info("turn done", extra={"conversation": "c1", "ms": 12})
    line = json.loads(captured.getvalue().strip())
    assert line["message"] == "turn done"
    assert line["conversation"] == "c1" and line["ms"] == 12
    assert line["level"] == "INFO"


@pytest.mark.parametrize("form", ["text", "json"])
def test_a_line_logged_during_a_traced_turn_names_its_trace_and_span(
    captured: io.StringIO, form: str
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    setup_logging(LogSettings(format=form), stream=captured)
    log = logging.getLogger("ragbot.test")
    log.info("before the turn")
    with TracerProvider().get_tracer("test").start_as_current_span("turn") as span:
        log.warning("answer failed: Throttled")
    trace_id, span_id = (
        format(span.get_span_context().trace_id, "032x"),
        format(span.get_span_context().span_id, "016x"),
    )
    before, during = captured.getvalue().splitlines()
    assert "trace_id" not in before
    if form == "json":
        assert {k: json.loads(during)[k] for k in ("trace_id", "span_id")} == {
            "trace_id": trace_id,
            "span_id": span_id,
        }
    else:
        assert during.endswith(f"answer failed: Throttled trace_id={trace_id} span_id={span_id}")
