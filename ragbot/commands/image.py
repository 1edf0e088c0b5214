"""`ragbot image`: create images from a prompt and write them to a folder."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from pydantic import ValidationError

from rag.azure.connector import images_per_request
from rag.azure.images import MAX_IMAGE_BYTES, SIZES, ImageRequest, generate_images
from rag.errors import ConfigError
from ragbot.commands._common import init
from ragbot.commands._connector import (
    ENDPOINTS,
    add_endpoint_arguments,
    open_client,
    positive_float,
    positive_int,
)

HELP = "create images from a prompt (images/generations) and write them to a folder"
DESCRIPTION = f"""Create 1-10 images (images/generations) and write each to --out as
image-<created>-<n>.png (an existing file is never overwritten); print one line per file. Examples:

  ragbot image "A friendly robot at a help desk, flat illustration" --model dall-e-3 --out images
  ragbot image "Office floor plan, isometric" --model dall-e-3 --size 1792x1024 --quality hd --out images
  ragbot image "Three icons for VPN, Wi-Fi, printer" --model gpt-image-1 --n 3 --json --out images

The service answers with a short-lived URL, downloaded without credentials within
--download-timeout seconds and up to --max-bytes, or with the image in the JSON (b64_json, which
--response-format b64_json asks for); both are handled. On Azure, api-version 2023-12-01-preview
or later (AZURE_OPENAI_PREVIEW_API_VERSION); up to 2024-10-21 its schema allows one image a call
(DALL-E 3), so --n 3 makes three calls, at most four at once; 2025-04-01-preview and
OpenAI-compatible endpoints get --n in one call.

{ENDPOINTS}"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="what to draw (up to 4000 characters)")
    parser.add_argument("--n", type=int, default=1, help="how many images, 1-10 (1)")
    parser.add_argument("--size", choices=SIZES, default="1024x1024", help="(1024x1024)")
    parser.add_argument("--quality", choices=("standard", "hd"), help="(the service's default: standard)")
    parser.add_argument("--style", choices=("vivid", "natural"), help="(the service's default: vivid)")
    parser.add_argument("--response-format", choices=("url", "b64_json"), help="how the images come back")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write to (created)")
    parser.add_argument(
        "--max-bytes", type=positive_int, default=MAX_IMAGE_BYTES, help="largest image accepted (20 MiB)"
    )
    parser.add_argument(
        "--download-timeout", type=positive_float, default=60.0, help="seconds per URL download (60)"
    )
    parser.add_argument("--json", action="store_true", help="print the files as a JSON list")
    add_endpoint_arguments(parser, "the image deployment or model, e.g. dall-e-3 (required)")


async def _main(args: argparse.Namespace) -> int:
    try:
        request = ImageRequest(
            prompt=args.prompt,
            n=args.n,
            size=args.size,
            quality=args.quality,
            style=args.style,
            response_format=args.response_format,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(f"--{'-'.join(str(p) for p in error['loc'])}: {error['msg']}") from None
    settings = init()
    async with open_client(settings.rag, args, "images") as client:
        saved = await generate_images(
            client,
            request,
            args.out,
            per_request=images_per_request(client),
            max_bytes=args.max_bytes,
            download_time_limit=args.download_timeout,
        )
    if args.json:
        print(json.dumps([image.model_dump(mode="json") for image in saved], ensure_ascii=False))
        return 0
    for image in saved:
        print(f"{image.path}  ({image.bytes:,} bytes, from {image.source})")
        if image.revised_prompt:
            print(f"  revised prompt: {image.revised_prompt}")
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
