"""What the connector commands (`chat`, `embed`, `image`, `raw`) share: which endpoint and model to use,
and how their output names an error."""

from __future__ import annotations

import argparse
from typing import Any

from rag.errors import RagError
from ragbot.logs import redact

ENDPOINTS = """Endpoint: Azure OpenAI when AZURE_OPENAI_ENDPOINT (or _RESOURCE) is set, with
AZURE_OPENAI_KEY or, without a key, an Entra ID token; else the OpenAI-compatible endpoint of
RAGBOT_LLM_BASE_URL with RAGBOT_LLM_API_KEY and, for an OpenAI key in several organizations,
RAGBOT_LLM_ORGANIZATION (sent as OpenAI-Organization). --provider picks one when both are set.
Calls are retried on 408/429/5xx honouring retry-after, within RAGBOT_RETRY_BUDGET, and at most
RAGBOT_RATE_LIMIT_CALLS start per RAGBOT_RATE_LIMIT_PERIOD (1000 per 60 s)."""


def add_endpoint_arguments(parser: argparse.ArgumentParser, model_help: str) -> None:
    parser.add_argument(
        "--provider",
        choices=("auto", "azure", "openai"),
        default="auto",
        help="Azure OpenAI or the OpenAI-compatible endpoint (default: auto, Azure when configured)",
    )
    parser.add_argument("--model", metavar="NAME", help=model_help)


def error_json(exc: RagError, secrets: list[str]) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": redact(str(exc), secrets)}
