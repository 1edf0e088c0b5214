"""Turn one source file into a :class:`Document`: Markdown, plain text, HTML, PDF and DOCX.

Every loader keeps the document's own structure as heading sections (PDFs: one section per page, headed
by the outline entry that covers it) and reads the metadata a citation needs: title, url, last modified
date, and who may see it (security trimming).

Who may see it: a Markdown front matter key `groups` (group ids, a YAML list or a comma-separated string)
and `users` (Entra object ids; `oids`, as Microsoft's samples call the field, is read too), or an HTML
`<meta name="groups" content="hr, managers">` and `<meta name="users" content="...">`. A file naming
neither is visible to everyone (other types always are); one naming any is visible to members of its
groups and to its users only.

Loaders never reject a file for what a person can read past: a front matter that is not valid YAML
(`title: Foo: Bar`) is read as `key: value` lines, text that is not UTF-8 is read as UTF-16 (by its byte
order mark) or Windows-1252; each such repair is a warning on the document (file and line), which the
indexing run logs and reports. A document without a title is titled by its first heading.
"""

from __future__ import annotations

import codecs
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
_SETEXT = re.compile(r"^[ \t]{0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^(?:    |\t|[ \t]*(?:[-*+>|]|\d+[.)])(?:\s|$))")  # code, lists, quotes, tables
_LENIENT_LINE = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*)$")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_WEB_URL = re.compile(r"^https?://\S+$")


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


def _ids(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return [str(item).strip() for item in items if str(item).strip()]


def _text(data: bytes, warnings: list[str]) -> str:
    """Text by its byte order mark (UTF-8, UTF-16), else UTF-8, else Windows-1252 with a warning."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    try:
        text = data.decode(encoding or "utf-8")
    except UnicodeDecodeError as exc:
        if encoding is not None:
            raise LoadError(f"not {encoding} text (invalid byte at offset {exc.start})") from None
        text = data.decode("cp1252", errors="replace")
        line = data.count(b"\n", 0, exc.start) + 1
        warnings.append(f"line {line}: not UTF-8, read as Windows-1252 (save the file as UTF-8)")
    if "\x00" in text:
        raise LoadError("binary data in a text file (NUL bytes)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _web_url(value: Any) -> str | None:
    """`value` when it is an absolute http(s) URL (metadata fields also hold other things)."""
    text = str(value or "").strip()
    return text if _WEB_URL.match(text) else None


def front_matter(block: str, first_line: int, warnings: list[str]) -> dict[str, Any]:
    """The front matter's keys: YAML when it parses, else its `key: value` lines read one by one."""
    try:
        loaded = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = first_line + mark.line if mark is not None else first_line
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        warnings.append(f"line {line}: front matter is not valid YAML ({problem}); read as key: value lines")
        loaded = None
        meta: dict[str, Any] = {}
        for line_text in block.split("\n"):
            found = _LENIENT_LINE.match(line_text.strip())
            if found:
                meta[found.group(1)] = found.group(2).strip().strip("'\"")
        return meta
    if loaded is not None and not isinstance(loaded, dict):
        warnings.append(f"line {first_line}: front matter is not a mapping of keys to values; ignored")
        return {}
    return loaded or {}


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

    def drop_last(self) -> None:
        """Take back the last line added (it turned out to be a setext heading)."""
        if self._lines:
            self._lines.pop()

    def flush(self) -> None:
        text = "\n".join(self._lines).strip()
        if text:
            self.sections.append(Section(text=text, heading_path=tuple(t for _, t in self._path)))
        self._lines = []

    def first_heading(self, level: int | None = None) -> str | None:
        """The first heading of `level` (None: of any level)."""
        for section in self.sections:
            if not section.heading_path:
                continue
            if level is None or section.text.startswith("#" * level + " "):
                return section.heading_path[-1]
        return None

    def title(self) -> str | None:
        """What a document without a title is called: its first `#` heading, else its first heading."""
        return self.first_heading(1) or self.first_heading()


def _markdown_outline(text: str, *, atx: bool = True) -> _Outline:
    """Sections by ATX (`# Title`, unless `atx` is false) and setext (`Title` over `=====` or `-----`)
    headings, outside code fences."""
    outline = _Outline()
    fenced = False
    previous: str | None = None  # the paragraph line a setext underline would turn into a heading
    for line in text.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
        heading = None if fenced or not atx else _ATX_HEADING.match(line)
        underline = None if fenced or previous is None else _SETEXT.match(line)
        if heading:
            outline.heading(len(heading.group(1)), heading.group(2).strip())
            previous = None
        elif underline and previous is not None:
            outline.drop_last()
            outline.heading(1 if underline.group(1)[0] == "=" else 2, previous)
            previous = None
        else:
            outline.add(line)
            stripped = line.strip()
            paragraph = stripped and not fenced and not _NOT_PARAGRAPH.match(line)
            previous = stripped if paragraph else None
    outline.flush()
    return outline


def load_markdown(data: bytes, path: Path) -> Document:
    warnings: list[str] = []
    text = _text(data, warnings)
    meta: dict[str, Any] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        meta = front_matter(match.group(1), 2, warnings)
        text = text[match.end() :]
    outline = _markdown_outline(text)
    title = meta.get("title")
    return Document(
        title=str(title).strip() if title else outline.title(),
        sections=outline.sections,
        url=str(meta["url"]).strip() if meta.get("url") else None,
        last_modified=iso_utc(meta.get("last_modified") or meta.get("date")),
        group_ids=_ids(meta.get("groups")),
        user_ids=_ids(meta.get("users", meta.get("oids"))),
        warnings=[f"{path}: {warning}" for warning in warnings],
    )


def load_text(data: bytes, path: Path) -> Document:
    """Plain text; a first line underlined with `===` (reStructuredText, setext) is its title."""
    warnings: list[str] = []
    text = _text(data, warnings).strip()
    outline = _markdown_outline(text, atx=False)
    return Document(
        title=outline.title(),
        sections=outline.sections,
        warnings=[f"{path}: {warning}" for warning in warnings],
    )


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
_PERMALINK_MARKS = {"¶", "#", "§", "🔗"}
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
        elif name == "pre":  # code keeps its lines, fenced so that answers quote it as code
            flush_loose()
            code = child.get_text().strip("\n")
            if code.strip():
                outline.add(f"```\n{code}\n```\n")
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
    for tag in main.find_all("a"):  # permalink marks next to headings (Sphinx "¶", "#", "🔗")
        if "headerlink" in (tag.get("class") or []) or tag.get_text().strip() in _PERMALINK_MARKS:
            tag.decompose()
    outline = _Outline()
    _html_blocks(main, outline)
    outline.flush()
    h1 = outline.first_heading(1) or outline.first_heading()
    # "<title>Guest Wi-Fi | Contoso Help Centre" with "<h1>Guest Wi-Fi": the h1 is the document's own title.
    title = h1 if h1 and (not head_title or head_title.startswith(h1)) else head_title or h1
    return Document(
        title=title or None,
        sections=outline.sections,
        url=url or meta("og:url"),
        last_modified=iso_utc(meta("last-modified", "article:modified_time", "dcterms.modified")),
        group_ids=_ids(meta("groups")),
        user_ids=_ids(meta("users", "oids")),
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


_PAGE_NUMBER = re.compile(r"^\W*(?:page\s+)?\d+\s*(?:(?:/|of)\s*\d+)?\W*$", re.I)
_FURNITURE_LINES = 3  # lines at the top and at the bottom of a page where headers and footers sit


def _without_furniture(pages: list[list[str]]) -> list[list[str]]:
    """Pages without their running headers and footers: page numbers ("Page 2 of 3", "- 2 -") and, on
    documents of two pages or more, lines repeated at the top or bottom of most pages (digits ignored)."""

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()).lower())

    edges = [{key(line) for line in lines[:_FURNITURE_LINES] + lines[-_FURNITURE_LINES:]} for lines in pages]
    seen: dict[str, int] = {}
    for found in edges:
        for item in found:
            seen[item] = seen.get(item, 0) + 1
    repeated = {item for item, count in seen.items() if len(pages) >= 2 and count > len(pages) / 2}
    out: list[list[str]] = []
    for lines in pages:
        last = len(lines) - _FURNITURE_LINES
        out.append(
            [
                line
                for n, line in enumerate(lines)
                if not (
                    (n < _FURNITURE_LINES or n >= last)
                    and (_PAGE_NUMBER.match(line) or key(line) in repeated)
                )
            ]
        )
    return out


def load_pdf(data: bytes, path: Path) -> Document:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF: it needs a password")
        outline = _pdf_outline(reader)
        sections: list[Section] = []
        pages = [
            [line.rstrip() for line in (page.extract_text() or "").splitlines() if line.strip()]
            for page in reader.pages
        ]
        for number, lines in enumerate(_without_furniture(pages), start=1):
            text = "\n".join(lines).strip()
            heading_path = next((p for n, p in reversed(outline) if n <= number), ())
            if text:
                sections.append(Section(text=text, heading_path=heading_path, page=number))
        info = reader.metadata
        title = str(info.title).strip() if info and info.title else None
        modified = info.modification_date if info else None
        url = _web_url(info.get("/URL")) or _web_url(info.subject) if info else None
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files; all mean "cannot read"
        raise LoadError(f"unreadable PDF: {type(exc).__name__}: {exc}") from None
    return Document(title=title or None, sections=sections, url=url, last_modified=iso_utc(modified))


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
        title=(props.title or "").strip() or styled_title or outline.title(),
        sections=outline.sections,
        url=_web_url(props.identifier),
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
