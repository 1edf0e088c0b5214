"""The one logging set-up: readable lines by default, JSON lines with `RAGBOT_LOG_FORMAT=json`.

Every record passes a redaction filter first, so a secret that reaches a log message, an
exception text or an argument (keys, passwords, bearer tokens, Direct Line secrets, the password in a
URL's userinfo, secret query parameters such as a SAS `sig=`) prints as `***`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

from opentelemetry import trace
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MASK = "***"
SECRET_QUERY_PARAMETERS = (
    "sig", "signature", "x-amz-signature", "x-goog-signature", "code", "key", "api-key", "api_key",
    "apikey", "subscription-key", "token", "access_token", "id_token", "refresh_token", "secret",
    "client_secret", "password", "passwd", "pwd",
)  # fmt: skip
"""Query parameters whose value is a credential: SAS signatures, OAuth codes and tokens, API keys."""
_URL_PATTERNS = [
    # the password of `scheme://user:password@host`, up to the authority's last '@'
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s/?#@:]*:)[^\s/?#]*(?=@)"),
    re.compile(
        rf"(?i)([?&;](?:{'|'.join(re.escape(name) for name in SECRET_QUERY_PARAMETERS)})=)[^&#\s\"'<>]+"
    ),
]
_PATTERNS = [
    *_URL_PATTERNS,
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-_.~+/=]{8,}"),
    re.compile(
        r"(?i)((?:api[-_]?key|password|secret|access[-_]?token|sig|accountkey|sharedaccesskey)[\"']?\s*[:=]\s*"
        r"[\"']?)[^\s\"'&,;}]{4,}"
    ),
    # any JWT, e.g. the Direct Line stream token in a WebSocket URL's `?t=` (the access log prints it)
    re.compile(r"()eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
]


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGBOT_LOG_", env_file=".env", extra="ignore")

    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    extra_secrets: list[str] = Field(default_factory=list, exclude=True)


def mask_urls(text: str) -> str:
    """Mask the userinfo password and the secret query parameters of every URL in `text`."""
    for pattern in _URL_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secret values and anything shaped like a credential."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites the record's message (args, exception and string `extra=` fields included) with secrets
    masked."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        record.msg, record.args = redact(message, self.secrets), None
        record.exc_info = None if record.exc_text else record.exc_info
        for name, value in vars(record).items():  # `extra=` fields, which the JSON format prints
            if name not in JsonFormatter._STANDARD and isinstance(value, str):
                setattr(record, name, redact(value, self.secrets))
        return True


class TraceIds(logging.Filter):
    """Stamps the record with the current span's `trace_id` and `span_id` (hex, as W3C and Application
    Insights' operation_Id print them) when a turn is being traced, so a log line leads to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class TextFormatter(logging.Formatter):
    """`time level logger: message`, then the trace and span ids when there are any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        trace_id = getattr(record, "trace_id", None)
        return f"{line} trace_id={trace_id} span_id={getattr(record, 'span_id', '')}" if trace_id else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, plus any `extra=` fields."""

    _STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


def redaction() -> list[logging.Filter]:
    """The secret masking of the configured log handler, for another handler (a log exporter)."""
    return [f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, RedactingFilter)]


def setup_logging(
    settings: LogSettings | None = None, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Configure the root logger once; `secrets` are the configured credential values to mask."""
    settings = settings or LogSettings()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter([*secrets, *settings.extra_secrets]))
    handler.addFilter(TraceIds())
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for noisy in ("azure.core.pipeline.policies.http_logging_policy", "msrest", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
