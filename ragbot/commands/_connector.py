"""What the connector commands (`chat`, `embed`, `image`, `raw`) share: which endpoint and model to use,
the client for it, and how their output names an error."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from rag.azure.client import AzureOpenAIClient
from rag.azure.connector import Purpose, connector_client
from rag.errors import RagError
from rag.settings import Settings
from ragbot.logs import redact

ENDPOINTS = """Endpoint: Azure OpenAI when AZURE_OPENAI_ENDPOINT (or _RESOURCE) is set, with
AZURE_OPENAI_KEY or, without a key, an Entra ID token; else the OpenAI-compatible endpoint of
RAGBOT_LLM_BASE_URL with RAGBOT_LLM_API_KEY and, for an OpenAI key in several organizations,
RAGBOT_LLM_ORGANIZATION (sent as OpenAI-Organization). --provider picks one when both are set.
Calls are retried on 408/429/5xx honouring retry-after, within RAGBOT_RETRY_BUDGET, and at most
RAGBOT_RATE_LIMIT_CALLS start per RAGBOT_RATE_LIMIT_PERIOD (1000 per 60 s)."""


MAX_CONCURRENCY = 64


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number of seconds above 0 (at most a day)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 86400, got {text}")
    return value


def concurrency(text: str) -> int:
    """An argparse type: requests in flight, 1 to :data:`MAX_CONCURRENCY`."""
    value = positive_int(text)
    if value > MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"at most {MAX_CONCURRENCY}, got {value}")
    return value


def add_endpoint_arguments(parser: argparse.ArgumentParser, model_help: str) -> None:
    parser.add_argument(
        "--provider",
        choices=("auto", "azure", "openai"),
        default="auto",
        help="Azure OpenAI or the OpenAI-compatible endpoint (default: auto, Azure when configured)",
    )
    parser.add_argument("--model", metavar="NAME", help=model_help)


@asynccontextmanager
async def open_client(
    settings: Settings, args: argparse.Namespace, purpose: Purpose
) -> AsyncIterator[AzureOpenAIClient]:
    """The client `--provider` and `--model` pick for `purpose`, closed when the command is done with it."""
    client = connector_client(settings, args.provider, purpose=purpose, model=args.model)
    try:
        yield client
    finally:
        await client.aclose()


def error_json(exc: RagError, secrets: list[str]) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": redact(str(exc), secrets)}
