"""`ragbot raw`: any request to the model endpoint, with the configured credentials, rate limit and
retries, for what the other commands do not cover (listing deployments, a new API, a file upload)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rag.azure.client import DEFAULT_MAX_BYTES, RawResponse, Upload
from rag.azure.retry import RetryPolicy
from rag.errors import ConfigError
from ragbot.commands._common import init, secret_values
from ragbot.commands._connector import (
    ENDPOINTS,
    add_endpoint_arguments,
    open_client,
    positive_float,
    positive_int,
)
from ragbot.logs import MASK, redact

HELP = "send any request to the model endpoint (credentials, retries and rate limit included)"
DESCRIPTION = f"""Send METHOD PATH to the model endpoint with the configured credentials and print the
answer. PATH is relative to AZURE_OPENAI_ENDPOINT (or RAGBOT_LLM_BASE_URL); {{deployment}} in it is
the chat deployment; on Azure, api-version is added unless --query gives one. Examples:

  ragbot raw GET /openai/models
  ragbot raw POST '/openai/deployments/{{deployment}}/chat/completions' \\
      --json '{{"messages": [{{"role": "user", "content": "Hi"}}]}}' --debug
  ragbot raw POST /openai/files --form purpose=fine-tune --file file=train.jsonl
  ragbot raw POST /openai/deployments/tts/audio/speech --json @speech.json \\
      --response-type binary --out speech.mp3
  ragbot raw GET /openai/deployments/gpt-4o --retry-all-errors --max-retries 5 \\
      --retry-delay 2 --exponential-backoff

Data: --json TEXT (or @FILE), or --form NAME=VALUE and --file FIELD=PATH (multipart).
Response: --response-type json (printed indented), text, or binary (written to --out FILE).
Retries: 408/429/5xx and network faults by default (--retry-all-errors: every error status),
waiting what the service asks for (retry-after-ms, Retry-After), else --retry-delay seconds
(doubled after each try with --exponential-backoff; unset: jittered backoff from 0.5 s), at most
--max-retries times and within RAGBOT_RETRY_BUDGET. --debug prints each request as sent and the
response's status and headers to standard error, with keys, tokens and secret values masked.
Exit status 1 when the service still answers with an error.

{ENDPOINTS}"""

SECRET_HEADERS = frozenset({"api-key", "authorization", "ocp-apim-subscription-key", "x-api-key", "cookie"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method", type=str.upper, help="GET, POST, PUT, PATCH, DELETE, HEAD")
    parser.add_argument("path", help="path under the endpoint, e.g. /openai/deployments/{deployment}/...")
    parser.add_argument("--query", action="append", default=[], metavar="NAME=VALUE", help="(repeatable)")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'", help="(repeatable)")
    data = parser.add_argument_group("request data (JSON, or form fields and files)")
    data.add_argument("--json", metavar="TEXT|@FILE", help="a JSON body, given or read from FILE")
    data.add_argument("--form", action="append", default=[], metavar="NAME=VALUE", help="a form field")
    data.add_argument("--file", action="append", default=[], metavar="FIELD=PATH", help="a file (multipart)")
    out = parser.add_argument_group("response")
    out.add_argument("--response-type", choices=("json", "text", "binary"), default="json", help="(json)")
    out.add_argument("--out", type=Path, metavar="FILE", help="where a binary response goes")
    out.add_argument(
        "--max-bytes", type=positive_int, default=DEFAULT_MAX_BYTES, help="largest response read (64 MiB)"
    )
    out.add_argument(
        "--timeout", type=positive_float, help="seconds for each try (default RAGBOT_REQUEST_TIMEOUT)"
    )
    out.add_argument("--debug", action="store_true", help="print requests and responses, secrets masked")
    retry = parser.add_argument_group("retries")
    retry.add_argument("--retry-delay", type=float, metavar="SECONDS", help="wait between tries")
    retry.add_argument("--exponential-backoff", action="store_true", help="double the delay after each try")
    retry.add_argument(
        "--retry-all-errors", action="store_true", help="retry every error status, not only 408/429/5xx"
    )
    retry.add_argument("--max-retries", type=int, metavar="N", help="at most N retries (0: none)")
    add_endpoint_arguments(parser, "the deployment {deployment} stands for (default: AZURE_OPENAI_MODEL)")


def _pairs(values: list[str], sep: str, flag: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, found, rest = value.partition(sep)
        if not found or not name.strip():
            raise ConfigError(f"{flag} wants NAME{sep}VALUE, got {value!r}")
        pairs.append((name.strip(), rest.strip() if sep == ":" else rest))
    return pairs


class RawRequest:
    """The command's request, read and checked before any call (files are read here, not on the loop)."""

    def __init__(self, args: argparse.Namespace) -> None:
        if args.response_type == "binary" and not args.out:
            raise ConfigError("--response-type binary needs --out FILE")
        self.query = dict(_pairs(args.query, "=", "--query"))
        self.headers = dict(_pairs(args.header, ":", "--header"))
        self.form = _pairs(args.form, "=", "--form")
        self.files = [self._upload(field, path) for field, path in _pairs(args.file, "=", "--file")]
        self.json_body = self._json(args.json) if args.json is not None else None
        if self.json_body is not None and (self.form or self.files):
            raise ConfigError("send either --json or --form/--file, not both")
        try:
            self.retry = RetryPolicy(
                max_retries=args.max_retries,
                delay=args.retry_delay,
                exponential=args.exponential_backoff,
                all_errors=args.retry_all_errors,
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ConfigError(f"retry option {error['loc'][0]}: {error['msg']}") from None

    @staticmethod
    def _json(text: str) -> Any:
        source = text
        if text.startswith("@"):
            try:
                text = Path(text[1:]).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read {text[1:]}: {exc}") from None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"--json {source[:40]!r} is not JSON: {exc}") from None

    @staticmethod
    def _upload(field: str, path: str) -> Upload:
        try:
            return Upload(field, Path(path).name, Path(path).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def masked_headers(headers: Mapping[str, str], secrets: list[str]) -> list[str]:
    """`Name: value` lines; credential headers show only their scheme (`Bearer ***`), every other value
    passes the log redaction (configured secrets and credential-shaped text)."""
    lines = []
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS:
            scheme, _, rest = value.partition(" ")
            value = f"{scheme} {MASK}" if rest else MASK
        lines.append(redact(f"{name}: {value}", secrets))
    return lines


def _debug_body(request: RawRequest, secrets: list[str]) -> list[str]:
    if request.json_body is not None:
        text = json.dumps(request.json_body, ensure_ascii=False)
        return [redact(text if len(text) <= 4000 else text[:4000] + " …", secrets)]
    lines = [redact(f"{name}={value}", secrets) for name, value in request.form]
    lines += [
        f"{upload.field}=@{upload.filename} ({len(upload.content):,} bytes)" for upload in request.files
    ]
    return lines


def show(response: RawResponse, args: argparse.Namespace) -> None:
    if args.response_type == "binary":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(response.body)
        print(f"wrote {len(response.body):,} bytes to {args.out}", file=sys.stderr)
        return
    text = response.body.decode("utf-8", errors="replace")
    if args.response_type == "text" or not text.strip():
        print(text)
        return
    try:
        print(json.dumps(json.loads(text), indent=2, ensure_ascii=False))
    except ValueError:
        print(f"(not JSON, {response.content_type or 'no Content-Type'}; shown as text)", file=sys.stderr)
        print(text)


async def _main(args: argparse.Namespace, request: RawRequest) -> int:
    settings = init()
    secrets = secret_values(settings.rag, settings.bot)

    def trace(method: str, url: str, headers: Mapping[str, str]) -> None:
        lines = [f"> {method} {redact(url, secrets)}", *(f"> {h}" for h in masked_headers(headers, secrets))]
        body = _debug_body(request, secrets)
        print("\n".join([*lines, *([">", *(f"> {line}" for line in body)] if body else [])]), file=sys.stderr)

    async with open_client(settings.rag, args, "raw") as client:
        response = await client.request(
            args.method,
            args.path,
            query=request.query,
            headers=request.headers,
            json_body=request.json_body,
            form=request.form,
            files=request.files,
            time_limit=args.timeout,
            retry=request.retry,
            on_request=trace if args.debug else None,
            max_bytes=args.max_bytes,
        )
    if args.debug:
        status = [f"< {response.status}", *(f"< {h}" for h in masked_headers(response.headers, secrets))]
        print("\n".join(status), file=sys.stderr)
    show(response, args)
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args, RawRequest(args)))
