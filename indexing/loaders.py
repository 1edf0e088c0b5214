"""Turn one source file into a :class:`Document`: Markdown, plain text, HTML, PDF and DOCX.

Every loader keeps the document's own structure as heading sections (PDFs: one section per page, headed
by the outline entry that covers it) and reads the metadata a citation needs: title, url, last modified
date, and the groups allowed to see it (security trimming).

Where group ids come from: a Markdown front matter key `groups` (a YAML list or a comma-separated
string) or an HTML `<meta name="groups" content="hr, managers">`. Other types, and files without the
key, are visible to everyone.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import docx
import yaml
from bs4 import BeautifulSoup, Tag
from bs4.element import NavigableString
from docx.document import Document as DocxDocument
from docx.table import Table
from docx.text.paragraph import Paragraph
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from indexing.documents import Document, LoadError, Section

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_ATX_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")


def iso_utc(value: Any) -> str | None:
    """A date or datetime (or its ISO text) as `YYYY-MM-DDTHH:MM:SSZ`, the form Edm.DateTimeOffset takes."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    return None


def _groups(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return [str(item).strip() for item in items if str(item).strip()]


def _text(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    if "\x00" in text:
        raise LoadError("binary data in a text file (NUL bytes)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


class _Outline:
    """Collects sections as headings arrive: a heading closes the open section and opens a new one."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self._path: list[tuple[int, str]] = []
        self._lines: list[str] = []

    def heading(self, level: int, text: str) -> None:
        self.flush()
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, text))
        self._lines = ["#" * min(level, 6) + " " + text]

    def add(self, text: str) -> None:
        self._lines.append(text)

    def flush(self) -> None:
        text = "\n".join(self._lines).strip()
        if text:
            self.sections.append(Section(text=text, heading_path=tuple(t for _, t in self._path)))
        self._lines = []

    def first_heading(self, level: int) -> str | None:
        for section in self.sections:
            if section.heading_path and section.text.startswith("#" * level + " "):
                return section.heading_path[-1]
        return None


def load_markdown(data: bytes, path: Path) -> Document:
    text = _text(data)
    meta: dict[str, Any] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            raise LoadError(f"front matter is not valid YAML: {str(exc).splitlines()[0]}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise LoadError("front matter is not a mapping of keys to values")
        meta = loaded or {}
        text = text[match.end() :]
    outline = _Outline()
    fenced = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else _ATX_HEADING.match(line)
        if heading:
            outline.heading(len(heading.group(1)), heading.group(2).strip())
        else:
            outline.add(line)
    outline.flush()
    title = meta.get("title")
    return Document(
        title=str(title) if title else outline.first_heading(1),
        sections=outline.sections,
        url=str(meta["url"]) if meta.get("url") else None,
        last_modified=iso_utc(meta.get("last_modified") or meta.get("date")),
        group_ids=_groups(meta.get("groups")),
    )


def load_text(data: bytes, path: Path) -> Document:
    text = _text(data).strip()
    return Document(title=None, sections=[Section(text=text)] if text else [])


# --- HTML ---------------------------------------------------------------------------------------------

_DROP = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "svg",
    "iframe",
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = {"p", "pre", "blockquote", "dt", "dd", "figcaption", "address", "summary"}
_CONTAINERS = [*_HEADINGS, "p", "ul", "ol", "table", "div", "section", "article", "pre"]


def _inline(tag: Tag) -> str:
    """The text of an element with its whitespace collapsed (inline tags add no spaces of their own)."""
    return " ".join(tag.get_text().split())


def _html_blocks(element: Tag, outline: _Outline) -> None:
    """Walk the content in document order: headings open sections, blocks become paragraphs."""
    loose: list[str] = []

    def flush_loose() -> None:
        text = " ".join(" ".join(loose).split())
        if text:
            outline.add(text + "\n")
        loose.clear()

    for child in element.children:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString:  # plain text, not a comment or CDATA
                loose.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name in _HEADINGS:
            flush_loose()
            heading = _inline(child)
            if heading:
                outline.heading(_HEADINGS[name], heading)
        elif name in ("ul", "ol"):
            flush_loose()
            for number, item in enumerate(child.find_all("li", recursive=False), start=1):
                marker = f"{number}." if name == "ol" else "-"
                outline.add(f"{marker} {_inline(item)}")
            outline.add("")
        elif name == "table":
            flush_loose()
            for row in child.find_all("tr"):
                cells = [_inline(c) for c in row.find_all(["th", "td"])]
                if any(cells):
                    outline.add(" | ".join(cells))
            outline.add("")
        elif name in _BLOCKS:
            flush_loose()
            text = _inline(child)
            if text:
                outline.add(text + "\n")
        elif name == "br":
            loose.append(" ")
        elif child.find(_CONTAINERS):
            flush_loose()
            _html_blocks(child, outline)
        else:
            loose.append(child.get_text())
    flush_loose()


def load_html(data: bytes, path: Path) -> Document:
    soup = BeautifulSoup(data, "lxml")
    head_title = " ".join(soup.title.get_text(" ").split()) if soup.title else ""

    def meta(*names: str) -> str | None:
        for name in names:
            tag = soup.find("meta", attrs={"name": name}) or soup.find("meta", attrs={"property": name})
            if isinstance(tag, Tag) and tag.get("content"):
                return str(tag["content"]).strip()
        return None

    canonical = soup.find("link", rel="canonical")
    url = str(canonical["href"]).strip() if isinstance(canonical, Tag) and canonical.get("href") else None
    main = soup.find("main") or soup.select_one('[role="main"]') or soup.find("article") or soup.body or soup
    if not isinstance(main, Tag):
        raise LoadError("no HTML content")
    for tag in main.find_all(_DROP):
        tag.decompose()
    outline = _Outline()
    _html_blocks(main, outline)
    outline.flush()
    h1 = outline.first_heading(1)
    # "<title>Guest Wi-Fi | Contoso Help Centre" with "<h1>Guest Wi-Fi": the h1 is the document's own title.
    title = h1 if h1 and (not head_title or head_title.startswith(h1)) else head_title or h1
    return Document(
        title=title or None,
        sections=outline.sections,
        url=url or meta("og:url"),
        last_modified=iso_utc(meta("last-modified", "article:modified_time", "dcterms.modified")),
        group_ids=_groups(meta("groups")),
    )


# --- PDF ----------------------------------------------------------------------------------------------


def _pdf_outline(reader: PdfReader) -> list[tuple[int, tuple[str, ...]]]:
    """(page number, heading path) of every outline entry, in page order; [] when there is none."""
    found: list[tuple[int, tuple[str, ...]]] = []

    def walk(items: Iterable[Any], path: tuple[str, ...]) -> None:
        last: tuple[str, ...] = path
        for item in items:
            if isinstance(item, list):
                walk(item, last)
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())
            page = reader.get_destination_page_number(item)
            if title and page is not None and page >= 0:
                last = (*path, title)
                found.append((page + 1, last))

    try:
        walk(reader.outline, ())
    except (PdfReadError, KeyError, ValueError, TypeError, AttributeError):
        return []
    return sorted(found, key=lambda entry: entry[0])


def load_pdf(data: bytes, path: Path) -> Document:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF: it needs a password")
        outline = _pdf_outline(reader)
        sections: list[Section] = []
        for number, page in enumerate(reader.pages, start=1):
            text = "\n".join(line.rstrip() for line in (page.extract_text() or "").splitlines()).strip()
            heading_path = next((p for n, p in reversed(outline) if n <= number), ())
            if text:
                sections.append(Section(text=text, heading_path=heading_path, page=number))
        info = reader.metadata
        title = str(info.title).strip() if info and info.title else None
        modified = info.modification_date if info else None
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files; all mean "cannot read"
        raise LoadError(f"unreadable PDF: {type(exc).__name__}: {exc}") from None
    return Document(title=title or None, sections=sections, last_modified=iso_utc(modified))


# --- DOCX ---------------------------------------------------------------------------------------------

_DOCX_HEADING = re.compile(r"^Heading (\d)$")


def _docx_blocks(document: DocxDocument) -> Iterable[Paragraph | Table]:
    """Paragraphs and tables of the body in reading order (python-docx lists them separately)."""
    body = document.element.body
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            yield Paragraph(child, document)
        elif tag == "tbl":
            yield Table(child, document)


def load_docx(data: bytes, path: Path) -> Document:
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(f"unreadable DOCX: {type(exc).__name__}: {exc}") from None
    outline = _Outline()
    styled_title: str | None = None
    for block in _docx_blocks(document):
        if isinstance(block, Table):
            for row in block.rows:
                cells = [" ".join(cell.text.split()) for cell in row.cells]
                if any(cells):
                    outline.add(" | ".join(dict.fromkeys(cells)))  # merged cells repeat their text
            outline.add("")
            continue
        text = " ".join(block.text.split())
        if not text:
            continue
        style = block.style.name if block.style is not None else ""
        heading = _DOCX_HEADING.match(style or "")
        if style == "Title":
            styled_title = styled_title or text
        elif heading:
            outline.heading(int(heading.group(1)), text)
        elif style and style.startswith("List"):
            outline.add(f"- {text}")
        else:
            outline.add(text + "\n")
    outline.flush()
    props = document.core_properties
    return Document(
        title=(props.title or "").strip() or styled_title or outline.first_heading(1),
        sections=outline.sections,
        last_modified=iso_utc(props.modified),
    )


LOADERS: dict[str, Callable[[bytes, Path], Document]] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}


def load(data: bytes, path: Path) -> Document:
    """The document in `data` (the bytes of `path`), by file extension; raises LoadError when unreadable."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoadError(f"unsupported file type {path.suffix or '(none)'}")
    return loader(data, path)
