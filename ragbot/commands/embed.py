"""`ragbot embed`: embedding vectors of any texts, as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from rag.azure.connector import embed_texts
from rag.azure.embeddings import DEFAULT_BATCH
from rag.errors import ConfigError
from ragbot.commands._common import init
from ragbot.commands._connector import ENDPOINTS, add_endpoint_arguments, open_client, positive_int

HELP = "embedding vectors of texts (arguments or a file), as JSON"
DESCRIPTION = f"""Print the embedding of each text as one JSON object:
{{"model", "dimensions", "data": [{{"index", "text", "embedding": [...]}}], "usage"}}, in input order.
Examples:

  ragbot embed "How do I connect to the VPN?"
  ragbot embed --file questions.txt --dimensions 256 > vectors.json
  ragbot embed --provider openai --model text-embedding-3-small "hello" "world"

--file reads one text a line (blank lines skipped; - is standard input). --dimensions shortens
the vectors (text-embedding-3 models); on Azure it needs api-version 2024-10-21 or later
(AZURE_OPENAI_PREVIEW_API_VERSION), an older one is refused before any call. Texts go
--batch at a time (16, the limit of the oldest Azure deployments).

{ENDPOINTS}
On Azure the deployment is AZURE_OPENAI_EMBEDDING_NAME (on AZURE_OPENAI_EMBEDDING_ENDPOINT and
_KEY when set); on an OpenAI-compatible endpoint name the model with --model."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="a text to embed")
    parser.add_argument("--file", metavar="FILE", help="one text a line (- for standard input)")
    parser.add_argument(
        "--dimensions", type=positive_int, help="length of the vectors, where the model allows it"
    )
    parser.add_argument("--batch", type=positive_int, default=DEFAULT_BATCH, help="texts per request (16)")
    add_endpoint_arguments(parser, "the embedding deployment or model (Azure: AZURE_OPENAI_EMBEDDING_NAME)")


def read_texts(args: argparse.Namespace) -> list[str]:
    texts = list(args.texts)
    if args.file:
        try:
            raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {args.file}: {exc}") from None
        texts += [line.strip() for line in raw.splitlines() if line.strip()]
    if not texts:
        raise ConfigError("nothing to embed: give TEXT arguments or --file FILE")
    return texts


async def _main(args: argparse.Namespace) -> int:
    texts = read_texts(args)
    settings = init()
    async with open_client(settings.rag, args, "embeddings") as client:
        result = await embed_texts(
            client,
            texts,
            dimensions=args.dimensions,
            api_version=client.api_version if client.mode == "azure" else None,
            batch_size=args.batch,
        )
    for row, text in zip(result["data"], texts, strict=True):
        row["text"] = text
    print(json.dumps(result, ensure_ascii=False))
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
