"""From an answer's `[docN]` markers to numbered sources: the part every channel shares.

Numbers follow first use in the text, so a streamed prefix numbers its sources exactly as the final
message will (see :func:`cite_partial`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote, unquote, urlsplit

from rag.contract import DOC_MARKER, Citation
from rag.markdown import HEADING_MARK

MAX_SOURCES = 20
"""Teams rejects a message with more than 20 citations; every channel keeps the same numbering."""

MAX_STREAM_CHARS = 12_000
"""Cap of streamed text: with the final's sources it stays well under Teams' 40 KB message limit."""

_MARKER = re.compile(r"([ \t]*)" + DOC_MARKER.pattern)
_REPEATED = re.compile(r"(\[(\d+)\])(?:[ \t]*\[\2\])+")
_ARRIVING_MARKER = re.compile(r"\[(?:d(?:o(?:c\d*)?)?)?$")
_CUT_MARKER = re.compile(r"\[\d*$")
_POSITION = re.compile(r"\[(\d+)\]")
_HEADING = re.compile(HEADING_MARK, re.MULTILINE)
_SPACE = re.compile(r"\s+")

_ICONS = {
    ".pdf": "PDF",
    ".doc": "Microsoft Word",
    ".docx": "Microsoft Word",
    ".rtf": "Microsoft Word",
    ".xls": "Microsoft Excel",
    ".xlsx": "Microsoft Excel",
    ".csv": "Microsoft Excel",
    ".ppt": "Microsoft PowerPoint",
    ".pptx": "Microsoft PowerPoint",
    ".one": "Microsoft OneNote",
    ".vsd": "Microsoft Visio",
    ".vsdx": "Microsoft Visio",
    ".loop": "Microsoft Loop",
    ".txt": "Text",
    ".md": "Text",
    ".markdown": "Text",
    ".htm": "Text",
    ".html": "Text",
    ".png": "Image",
    ".jpg": "Image",
    ".jpeg": "Image",
    ".bmp": "Image",
    ".svg": "Image",
    ".gif": "GIF",
    ".mp4": "Video",
    ".mov": "Video",
    ".mp3": "Sound",
    ".wav": "Sound",
    ".zip": "ZIP",
    ".py": "Source Code",
    ".js": "Source Code",
    ".ts": "Source Code",
    ".json": "Source Code",
    ".yaml": "Source Code",
    ".yml": "Source Code",
    ".psd": "Adobe Photoshop",
    ".ai": "Adobe Illustrator",
    ".indd": "Adobe InDesign",
    ".sketch": "Sketch",
}
"""File type -> Teams' citation icon name (`appearance.image.name`)."""


PLACEHOLDER_DOMAINS = ("example", "invalid", "test", "localhost")
"""Top-level domains reserved for documentation and tests (RFC 2606): a url there never opens on the
web (the sample's `kb.contoso.example`), so it is not given as a link."""


def placeholder_url(url: str) -> bool:
    """True for a url under a reserved top-level domain (`https://kb.contoso.example/...`)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    return any(host == domain or host.endswith("." + domain) for domain in PLACEHOLDER_DOMAINS)


_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")
_BARE_URL = re.compile(r"(?<![\w(<`/])https?://[^\s)<>\]`*]+")


def unlink_placeholders(text: str) -> str:
    """`text` without links that cannot open: a Markdown link to a placeholder host keeps only its
    words, and a bare placeholder url becomes code (Web Chat and Teams would otherwise link it)."""

    def link(match: re.Match[str]) -> str:
        return match.group(1) if placeholder_url(match.group(2)) else match.group(0)

    def bare(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(".,;:!?'\"")
        rest = match.group(0)[len(url) :]
        return f"`{url}`{rest}" if placeholder_url(url) else match.group(0)

    return _BARE_URL.sub(bare, _LINK.sub(link, text))


def cut(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters, cut at a word with an ellipsis when too long."""
    flat = _SPACE.sub(" ", text).strip()
    if len(flat) <= limit:
        return flat
    head = flat[: limit - 1]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:.-") + "…"


def cut_block(text: str, limit: int) -> str:
    """Multi-line text kept as written, cut at a blank with an ellipsis when longer than `limit`."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    blank = max(head.rfind(" "), head.rfind("\n"))
    if blank > limit // 2:
        head = head[:blank]
    return _CUT_MARKER.sub("", head).rstrip() + "…"


@dataclass(frozen=True)
class Source:
    """One numbered source: the first cited chunk of a document (later chunks of it merge into it)."""

    position: int
    citation: Citation
    viewer: str | None = None
    """Where the bot serves indexed documents (`https://host/sources/` or `/sources/`), if it does."""

    @property
    def file_name(self) -> str | None:
        if self.citation.filepath:
            return PurePosixPath(self.citation.filepath.replace("\\", "/")).name or None
        if self.citation.url:
            return unquote(PurePosixPath(urlsplit(self.citation.url).path).name) or None
        return None

    @property
    def name(self) -> str:
        """Title, else file name, else a neutral label: never empty (Teams refuses empty names)."""
        title = _SPACE.sub(" ", self.citation.title or "").strip()
        return title or self.file_name or f"Source {self.position}"

    @property
    def extension(self) -> str:
        return PurePosixPath((self.file_name or "").lower()).suffix

    @property
    def link(self) -> str | None:
        """Where the source opens: its url (a PDF's with `#page=N`); without a url that opens (none, or
        a placeholder host), the bot's own view of the indexed document at the cited page or chunk; a
        PDF's `file.pdf#page=N` when there is no view either."""
        citation = self.citation
        page = f"#page={citation.page}" if citation.page and self.extension == ".pdf" else ""
        if citation.url and not placeholder_url(citation.url):
            return citation.url if "#" in citation.url else citation.url + page
        if self.viewer and citation.filepath:
            anchor = f"#page={citation.page}" if citation.page else f"#chunk={citation.chunk_id or 0}"
            return self.viewer + quote(citation.filepath.replace("\\", "/")) + anchor
        if citation.filepath and page:
            return citation.filepath + page
        return None

    @property
    def web_url(self) -> str | None:
        """The link when a browser can open it: absolute http or https, or the bot's own view."""
        link = self.link
        if link and (
            urlsplit(link).scheme in ("http", "https") or (self.viewer and link.startswith(self.viewer))
        ):
            return link
        return None

    @property
    def icon(self) -> str | None:
        icon = _ICONS.get(self.extension)
        if icon is None and self.citation.url and ".sharepoint." in urlsplit(self.citation.url).netloc:
            return "Microsoft SharePoint"
        return icon

    @property
    def excerpt(self) -> str:
        """The chunk's text as written (Markdown)."""
        return self.citation.content.strip()

    @property
    def summary(self) -> str:
        """The chunk's text without Markdown heading marks, for a one-line abstract."""
        return _HEADING.sub("", self.citation.content).strip()

    @property
    def keywords(self) -> list[str]:
        """Page, then the folders the file sits in (deepest first)."""
        found: list[str] = []
        if self.citation.page:
            found.append(f"page {self.citation.page}")
        if self.citation.filepath:
            folders = PurePosixPath(self.citation.filepath.replace("\\", "/")).parent.parts
            found.extend(folder for folder in reversed(folders) if folder not in ("/", ".", ".."))
        return found


@dataclass(frozen=True)
class Cited:
    """Answer text with `[n]` markers and the sources they point at, `sources[n-1].position == n`."""

    text: str
    sources: list[Source]


def cite(content: str, citations: Sequence[Citation], viewer: str | None = None) -> Cited:
    """Renumber `[docN]` to `[1]`, `[2]`, ... by first use.

    Markers past the citation list (or past the 20th source) disappear with the blank before them;
    citations sharing a url or file path become one source; `[1][1]` left by a merge collapses.
    Uncited citations are simply never numbered.
    """
    positions: dict[str, int] = {}
    sources: list[Source] = []

    def number(match: re.Match[str]) -> str:
        space, doc = match.group(1), int(match.group(2))
        if not 1 <= doc <= len(citations):
            return ""
        citation = citations[doc - 1]
        key = citation.url or citation.filepath or f"doc{doc}"
        position = positions.get(key)
        if position is None:
            if len(sources) >= MAX_SOURCES:
                return ""
            position = positions[key] = len(sources) + 1
            sources.append(Source(position, citation, viewer))
        return f"{space}[{position}]"

    return Cited(unlink_placeholders(_REPEATED.sub(r"\1", _MARKER.sub(number, content))), sources)


def cite_partial(content: str, citations: Sequence[Citation] | None) -> str:
    """Text safe to stream: every result is a prefix of the next and of the final message's body.

    Holds back a marker still arriving (`[do`), everything from the first marker while the
    citations are unknown, trailing blanks (a dropped marker would remove them) and text past
    :data:`MAX_STREAM_CHARS`.
    """
    return stream_cited(content, citations).text


def stream_cited(content: str, citations: Sequence[Citation] | None, viewer: str | None = None) -> Cited:
    """:func:`cite_partial`'s text and the sources it cites so far (numbered as in the final message)."""
    content = _ARRIVING_MARKER.sub("", content)
    sources: list[Source] = []
    if citations is None:
        first = DOC_MARKER.search(content)
        text = content[: first.start()] if first else content
    else:
        cited = cite(content, citations, viewer)
        text, sources = cited.text, cited.sources
    if len(text) > MAX_STREAM_CHARS:
        text = _CUT_MARKER.sub("", text[:MAX_STREAM_CHARS])
    text = text.strip()
    if sources:
        used = {int(n) for n in _POSITION.findall(text)}
        sources = [source for source in sources if source.position in used]
    return Cited(text, sources)
