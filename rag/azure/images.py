"""Image creation (`images/generations`): the request the connector allows, and the files it writes from
either answer form, a short-lived URL (downloaded without credentials, within a deadline and a byte cap)
or base64 in the JSON (`b64_json`)."""

from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from rag.azure.client import AzureOpenAIClient
from rag.azure.responses import filter_results, filtered_categories
from rag.errors import ContentFiltered, UpstreamUnavailable

Size = Literal["1024x1024", "1792x1024", "1024x1792"]
SIZES: tuple[Size, ...] = ("1024x1024", "1792x1024", "1024x1792")
PARALLEL_CALLS = 4
MAX_IMAGE_BYTES = 20 * 1024**2  # a 1792x1024 PNG is ~3 MB; hd ones stay well under this
_SUFFIXES = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"))


class ImageRequest(BaseModel):
    """The body of `images/generations`; None means "not sent" (the service's default)."""

    prompt: str = Field(min_length=1, max_length=4000)
    n: int = Field(default=1, ge=1, le=10)
    size: Size = "1024x1024"
    quality: Literal["standard", "hd"] | None = None
    style: Literal["vivid", "natural"] | None = None
    response_format: Literal["url", "b64_json"] | None = None
    user: str | None = None

    def wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class SavedImage(BaseModel):
    path: Path
    bytes: int
    source: Literal["url", "b64_json"]
    revised_prompt: str | None = None


async def generate_images(
    client: AzureOpenAIClient,
    request: ImageRequest,
    out_dir: Path,
    *,
    per_request: int = 10,
    max_bytes: int = MAX_IMAGE_BYTES,
    download_time_limit: float | None = None,
) -> list[SavedImage]:
    """Ask for the images, fetch each one and write it to `out_dir` as `image-<created>-<n>.<ext>`
    (a name already taken gets a counter, nothing is overwritten); returns what was written, in order.

    `n` goes `per_request` at a time (the api-version's schema maximum: DALL-E 3 on Azure makes one
    image a call), the calls at most :data:`PARALLEL_CALLS` at once, within the client's rate limit."""
    payloads = await _generate(client, request, max(1, per_request))
    items = [
        (item, payload.get("revised_prompt"))  # 2023-12-01-preview puts it beside `data`
        for payload in payloads
        for item in payload.get("data") or []
        if isinstance(item, dict)
    ]
    if not items:
        raise UpstreamUnavailable("images/generations answered without any image")
    stem = f"image-{payloads[0].get('created') or 'new'}"
    saved: list[SavedImage] = []
    for number, (item, shared_prompt) in enumerate(items, start=1):
        content, source = await _content(client, item, max_bytes, download_time_limit)
        path = await asyncio.to_thread(_write_new, out_dir, f"{stem}-{number}", _suffix(content), content)
        prompt = item.get("revised_prompt") or shared_prompt
        saved.append(
            SavedImage(
                path=path,
                bytes=len(content),
                source=source,
                revised_prompt=prompt if isinstance(prompt, str) else None,
            )
        )
    return saved


async def _generate(
    client: AzureOpenAIClient, request: ImageRequest, per_request: int
) -> list[dict[str, Any]]:
    """The answers of the calls that together ask for `request.n` images; the first failure cancels
    the other calls and is raised."""
    body = request.wire()
    counts = [min(per_request, request.n - start) for start in range(0, request.n, per_request)]
    gate = asyncio.Semaphore(PARALLEL_CALLS)

    async def call(count: int) -> dict[str, Any]:
        async with gate:
            return await client.images({**body, "n": count})

    try:
        async with asyncio.TaskGroup() as group:
            calls = [group.create_task(call(count)) for count in counts]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in calls]


async def _content(
    client: AzureOpenAIClient, item: dict[str, Any], max_bytes: int, time_limit: float | None
) -> tuple[bytes, Literal["url", "b64_json"]]:
    encoded = item.get("b64_json")
    if isinstance(encoded, str) and encoded:
        if len(encoded) * 3 // 4 > max_bytes:
            raise UpstreamUnavailable(f"an image is larger than the {max_bytes:,}-byte cap")
        try:
            return base64.b64decode(encoded, validate=True), "b64_json"
        except (binascii.Error, ValueError) as exc:
            raise UpstreamUnavailable(f"an image's b64_json is not valid base64: {exc}") from exc
    url = item.get("url")
    if isinstance(url, str) and url:
        return await client.download(url, max_bytes=max_bytes, time_limit=time_limit), "url"
    blocked = filtered_categories(filter_results(item.get("content_filter_results"), "completion"))
    if blocked:
        raise ContentFiltered("completion", blocked, "the image was withheld")
    raise UpstreamUnavailable("an image came back with neither a url nor b64_json")


def _suffix(content: bytes) -> str:
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return ".webp"
    return next((suffix for magic, suffix in _SUFFIXES if content.startswith(magic)), ".bin")


def _write_new(folder: Path, stem: str, suffix: str, content: bytes) -> Path:
    """Write to a file that did not exist before (exclusive create), so no earlier image is replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        path = folder / f"{stem}{f'-{attempt}' if attempt else ''}{suffix}"
        try:
            with path.open("xb") as handle:
                handle.write(content)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free file name for {stem}{suffix} in {folder}")
