"""`GET /sources/{filepath}`: a read-only page of one indexed document, for citations without a url.

The text comes from the local index (the backend's :class:`~rag.contract.Library`), never from the disk,
so the path is only ever a key: there is nothing to traverse. Every piece of text is HTML-escaped and the
page runs no script (its Content-Security-Policy allows none). A document with any chunk restricted to
groups is not shown at all: the page has no idea who is asking.

Each chunk is a section with `id="chunk=N"` and each PDF page starts at `id="page=N"`, so a citation
links to `/sources/hr/policy.pdf#page=2` or `/sources/it/vpn.md#chunk=3` and the browser scrolls there
(`:target` highlights it). Chunks repeat the end of the chunk before them (the chunker's overlap); the
view shows that text once.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Sequence

from aiohttp import web

from rag.contract import Library
from rag.documents import Chunk
from rag.errors import RagError

log = logging.getLogger(__name__)

MAX_PATH_CHARS = 1024
READ_TIMEOUT_S = 10.0
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'"
)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+)$")
_STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_CODE = re.compile(r"`([^`\n]+)`")
_OVERLAP_PROBE = 24  # characters of a chunk's start looked for in the chunk before it


def without_overlap(previous: str, current: str) -> str:
    """`current` minus its start when that start repeats the end of `previous` (the chunker's overlap)."""
    probe = current[:_OVERLAP_PROBE]
    start = previous.find(probe) if probe else -1
    while start != -1:
        tail = previous[start:]
        if current.startswith(tail):
            return current[len(tail) :].lstrip()
        start = previous.find(probe, start + 1)
    return current


def _inline(text: str) -> str:
    """Escaped text with Markdown's **bold** and `code` shown as such (applied after escaping, so
    nothing from the document can open a tag of its own)."""
    escaped = html.escape(text)
    return _CODE.sub(r"<code>\1</code>", _STRONG.sub(r"<strong>\1</strong>", escaped))


def _blocks(text: str) -> str:
    """Markdown-ish chunk text as HTML: `#` lines become headings, the rest paragraphs kept as written."""
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append(f"<p>{_inline(chr(10).join(paragraph))}</p>")
            paragraph.clear()

    for line in text.split("\n"):
        heading = _HEADING.match(line)
        if heading:
            flush()
            level = min(len(heading.group(1)) + 1, 6)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.strip():
            paragraph.append(line)
        else:
            flush()
    flush()
    return "\n".join(out)


def render_document(filepath: str, chunks: Sequence[Chunk]) -> str:
    """The whole page for one document's chunks (in document order)."""
    first = chunks[0]
    title = html.escape(first.title or filepath)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{title}</title>",
        '<link rel="stylesheet" href="/static/sources.css">',
        "</head><body><main>",
        f"<h1>{title}</h1>",
        f'<p class="where">The text of <code>{html.escape(filepath)}</code> in the knowledge base.</p>',
    ]
    previous = ""
    page: int | None = None
    for chunk in chunks:
        if chunk.page is not None and chunk.page != page:
            page = chunk.page
            parts.append(f'<h2 class="page" id="page={page}">Page {page}</h2>')
        text = without_overlap(previous, chunk.content)
        previous = chunk.content
        chunk_id = html.escape(chunk.chunk_id, quote=True)
        parts.append(f'<section class="chunk" id="chunk={chunk_id}">{_blocks(text)}</section>')
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _not_found() -> web.Response:
    return web.Response(
        status=404,
        text="No such document in the knowledge base.",
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )


class SourcesView:
    def __init__(self, library: Library) -> None:
        self.library = library

    async def show(self, request: web.Request) -> web.Response:
        filepath = request.match_info["filepath"]
        parts = filepath.split("/")
        if len(filepath) > MAX_PATH_CHARS or "\x00" in filepath or any(p in ("", ".", "..") for p in parts):
            return _not_found()
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                chunks = await self.library.document(filepath)
        except TimeoutError:
            log.warning("sources: reading %s from the index took over %.0f s", filepath, READ_TIMEOUT_S)
            return web.Response(status=503, text="The knowledge base is busy; try again.")
        except RagError as exc:
            log.warning("sources: cannot read %s: %s", filepath, exc)
            return web.Response(status=503, text="The knowledge base is not available right now.")
        if not chunks:
            return _not_found()
        return web.Response(
            text=render_document(filepath, chunks),
            content_type="text/html",
            headers={
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache",
            },
        )


def add_source_routes(app: web.Application, library: Library | None, prefix: str) -> None:
    """Mount `GET {prefix}{filepath}` when the backend has a local index to read documents from."""
    if library is not None:
        app.router.add_get(prefix + "{filepath:.+}", SourcesView(library).show)
