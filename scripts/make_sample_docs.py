#!/usr/bin/env python3
"""Generate the PDF and DOCX articles of the sample help-desk knowledge base.

The Contoso sample knowledge base in ``samples/helpdesk/`` is mostly Markdown
and HTML, but a retriever also has to cope with PDF and Word files. Those
binary articles are not edited by hand: their text lives in Markdown files
under ``samples/helpdesk/_sources/`` and this script renders them.

Each source file starts with YAML-style front matter::

    ---
    title: Travel and Expense Policy
    url: https://kb.contoso.example/hr/expense-policy
    output: hr/expense-policy.pdf
    last_modified: 2025-02-01
    subtitle: Version 4.2 (optional line shown under the title)
    ---

``output`` is relative to the knowledge-base root and its extension (``.pdf``
or ``.docx``) selects the renderer. The body supports a small Markdown subset:
``#``/``##``/``###`` headings, paragraphs, ``- `` bullets, ``1. `` numbered
items, pipe tables, ``**bold**``, inline code and ``<!-- pagebreak -->``
(PDF: new page, DOCX: page break).

Output is deterministic: creation/modification dates come from
``last_modified``, producer/author metadata is fixed and DOCX zip entries get
a fixed timestamp, so re-running the script without source changes produces
byte-identical files (for a given fpdf2 / python-docx version).

Requirements: ``pip install fpdf2 python-docx`` (and ``pypdf`` for ``--verify``).

Usage::

    python scripts/make_sample_docs.py            # (re)generate all documents
    python scripts/make_sample_docs.py --check    # exit 1 if outputs are stale
    python scripts/make_sample_docs.py --verify   # also print extracted text stats
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KB_ROOT = REPO_ROOT / "samples" / "helpdesk"
PAGEBREAK = "<!-- pagebreak -->"
AUTHOR = "Contoso Ltd. Knowledge Base"
PRODUCER = "ragbot make_sample_docs.py"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


# --------------------------------------------------------------------------
# Source parsing
# --------------------------------------------------------------------------


@dataclass
class Block:
    """One block-level element of a source document."""

    kind: str  # heading | para | bullet | number | table | pagebreak
    text: str = ""
    level: int = 0
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class SourceDoc:
    """A parsed source file: front matter plus a list of blocks."""

    path: Path
    meta: dict[str, str]
    blocks: list[Block]

    @property
    def title(self) -> str:
        return self.meta["title"]

    @property
    def url(self) -> str:
        return self.meta["url"]

    @property
    def output(self) -> str:
        return self.meta["output"]

    @property
    def modified(self) -> dt.datetime:
        day = dt.date.fromisoformat(self.meta.get("last_modified", "2025-01-01"))
        return dt.datetime(day.year, day.month, day.day, 9, 0, 0, tzinfo=dt.UTC)


def parse_front_matter(text: str, path: Path) -> tuple[dict[str, str], str]:
    """Split ``---`` front matter (flat ``key: value`` pairs) from the body."""
    if not text.startswith("---\n"):
        raise ValueError(f"{path}: missing front matter")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise ValueError(f"{path}: unterminated front matter")
    meta: dict[str, str] = {}
    for line in text[4:end].splitlines():
        if not line.strip():
            continue
        key, _, value = line.partition(":")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        meta[key.strip()] = value
    for required in ("title", "url", "output"):
        if required not in meta:
            raise ValueError(f"{path}: front matter lacks '{required}'")
    return meta, text[end + 5 :]


def parse_blocks(body: str) -> list[Block]:
    """Parse the Markdown subset described in the module docstring."""
    blocks: list[Block] = []
    para: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if para:
            blocks.append(Block("para", " ".join(para)))
            para.clear()
        if table:
            blocks.append(Block("table", rows=[r[:] for r in table]))
            table.clear()

    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line == PAGEBREAK:
            flush()
            blocks.append(Block("pagebreak"))
        elif m := re.match(r"^(#{1,3})\s+(.*)$", line):
            flush()
            blocks.append(Block("heading", m.group(2), level=len(m.group(1))))
        elif line.startswith("|"):
            if para:
                flush()
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                table.append(cells)
        elif line.startswith("- "):
            flush()
            blocks.append(Block("bullet", line[2:]))
        elif m := re.match(r"^(\d+)\.\s+(.*)$", line):
            flush()
            blocks.append(Block("number", m.group(2), level=int(m.group(1))))
        else:
            if table:
                flush()
            para.append(line)
    flush()
    return blocks


def load_source(path: Path) -> SourceDoc:
    """Read and parse one source file."""
    meta, body = parse_front_matter(path.read_text(encoding="utf-8"), path)
    return SourceDoc(path=path, meta=meta, blocks=parse_blocks(body))


INLINE_RE = re.compile(r"(\*\*[^*]+\*\*|`[^`]+`)")


def inline_runs(text: str) -> list[tuple[str, bool, bool]]:
    """Split text into ``(text, bold, code)`` runs."""
    runs: list[tuple[str, bool, bool]] = []
    for part in INLINE_RE.split(text):
        if not part:
            continue
        if part.startswith("**") and part.endswith("**"):
            runs.append((part[2:-2], True, False))
        elif part.startswith("`") and part.endswith("`"):
            runs.append((part[1:-1], False, True))
        else:
            runs.append((part, False, False))
    return runs


def plain(text: str) -> str:
    """Strip inline markup."""
    return "".join(t for t, _, _ in inline_runs(text))


# --------------------------------------------------------------------------
# PDF rendering (fpdf2)
# --------------------------------------------------------------------------


def render_pdf(doc: SourceDoc) -> bytes:
    """Render a source document to PDF bytes with fpdf2 core fonts."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    title = doc.title
    url = doc.url

    class PolicyPDF(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", "", 8)
            self.set_text_color(110, 110, 110)
            self.cell(0, 5, f"Contoso Ltd. - {title}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(3)
            self.set_text_color(0, 0, 0)

        def footer(self) -> None:
            self.set_y(-14)
            self.set_font("Helvetica", "", 8)
            self.set_text_color(110, 110, 110)
            self.cell(0, 5, f"{url}    Page {self.page_no()} of {{nb}}", align="C")
            self.set_text_color(0, 0, 0)

    pdf = PolicyPDF(format="A4")
    pdf.set_creation_date(doc.modified)
    pdf.set_title(title)
    pdf.set_subject(url)
    pdf.set_author(AUTHOR)
    pdf.set_creator(PRODUCER)
    pdf.set_producer(PRODUCER)
    pdf.set_keywords(f"Contoso; help desk; {doc.meta.get('last_modified', '')}")
    pdf.set_lang("en-GB")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(20, 15, 20)
    pdf.add_page()

    def write_md(text: str, size: float = 10.5, height: float = 5.5) -> None:
        pdf.set_font("Helvetica", "", size)
        md = text.replace("`", "")
        pdf.multi_cell(0, height, md, markdown=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    first_heading = True
    for block in doc.blocks:
        if block.kind == "pagebreak":
            pdf.add_page()
        elif block.kind == "heading":
            if block.level == 1:
                pdf.set_font("Helvetica", "B", 18)
                pdf.multi_cell(0, 9, plain(block.text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                if first_heading and doc.meta.get("subtitle"):
                    pdf.set_font("Helvetica", "I", 10)
                    pdf.multi_cell(0, 6, doc.meta["subtitle"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                first_heading = False
                pdf.ln(3)
            else:
                pdf.ln(2)
                pdf.set_font("Helvetica", "B", 13 if block.level == 2 else 11.5)
                pdf.multi_cell(0, 7, plain(block.text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(1)
        elif block.kind == "para":
            write_md(block.text)
            pdf.ln(2)
        elif block.kind in ("bullet", "number"):
            marker = "-" if block.kind == "bullet" else f"{block.level}."
            pdf.set_font("Helvetica", "", 10.5)
            pdf.set_x(pdf.l_margin + 3)
            pdf.cell(6, 5.5, marker)
            left = pdf.l_margin
            pdf.set_left_margin(left + 9)
            write_md(block.text)
            pdf.set_left_margin(left)
            pdf.ln(1)
        elif block.kind == "table":
            pdf.set_font("Helvetica", "", 10)
            ncols = max(len(r) for r in block.rows)
            widths = tuple(
                max(6, max(len(plain(r[j])) for r in block.rows if j < len(r))) for j in range(ncols)
            )
            with pdf.table(first_row_as_headings=True, line_height=6, col_widths=widths) as table:
                for row in block.rows:
                    r = table.row()
                    for cell in row:
                        r.cell(plain(cell))
            pdf.ln(3)
    return bytes(pdf.output())


# --------------------------------------------------------------------------
# DOCX rendering (python-docx)
# --------------------------------------------------------------------------


def _normalise_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed timestamps and attributes for reproducibility."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def render_docx(doc: SourceDoc) -> bytes:
    """Render a source document to DOCX bytes with real Word heading styles."""
    import docx
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    props = document.core_properties
    props.title = doc.title
    props.identifier = doc.url
    props.subject = doc.meta.get("subtitle", "")
    props.author = AUTHOR
    props.last_modified_by = AUTHOR
    props.keywords = "Contoso; help desk"
    props.comments = f"Generated by {PRODUCER} from {doc.path.name}; canonical URL {doc.url}"
    props.revision = 1
    props.created = doc.modified.replace(tzinfo=None)
    props.modified = doc.modified.replace(tzinfo=None)
    props.last_printed = doc.modified.replace(tzinfo=None)

    def add_runs(paragraph: docx.text.paragraph.Paragraph, text: str) -> None:
        for part, bold, code in inline_runs(text):
            run = paragraph.add_run(part)
            run.bold = bold or None
            if code:
                run.font.name = "Consolas"

    first_heading = True
    for block in doc.blocks:
        if block.kind == "pagebreak":
            document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        elif block.kind == "heading":
            heading = document.add_heading("", level=min(block.level, 3))
            add_runs(heading, block.text)
            if block.level == 1 and first_heading and doc.meta.get("subtitle"):
                sub = document.add_paragraph(style="Subtitle")
                sub.add_run(doc.meta["subtitle"])
            first_heading = False
        elif block.kind == "para":
            add_runs(document.add_paragraph(), block.text)
        elif block.kind == "bullet":
            add_runs(document.add_paragraph(style="List Bullet"), block.text)
        elif block.kind == "number":
            add_runs(document.add_paragraph(style="List Number"), block.text)
        elif block.kind == "table":
            ncols = max(len(r) for r in block.rows)
            table = document.add_table(rows=0, cols=ncols)
            table.style = "Table Grid"
            for i, row in enumerate(block.rows):
                cells = table.add_row().cells
                for j, value in enumerate(row):
                    cells[j].text = ""
                    run = cells[j].paragraphs[0].add_run(plain(value))
                    run.bold = True if i == 0 else None

    buf = io.BytesIO()
    document.save(buf)
    return _normalise_zip(buf.getvalue())


RENDERERS: dict[str, Callable[[SourceDoc], bytes]] = {".pdf": render_pdf, ".docx": render_docx}


# --------------------------------------------------------------------------
# Verification helpers
# --------------------------------------------------------------------------


def describe(path: Path) -> str:
    """Return a one-line summary of a generated file's extracted text."""
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        reader = PdfReader(str(path))
        words = [len((p.extract_text() or "").split()) for p in reader.pages]
        return f"{len(reader.pages)} pages, words per page {words}"
    if path.suffix == ".docx":
        import docx

        document = docx.Document(str(path))
        styles = sorted({p.style.name for p in document.paragraphs if p.text.strip()})
        words = sum(len(p.text.split()) for p in document.paragraphs)
        return f"{len(document.paragraphs)} paragraphs, {words} words, styles {styles}"
    return "unknown format"


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def build(kb_root: Path, check: bool, verify: bool) -> int:
    """Render every source under ``kb_root/_sources``; return an exit code."""
    sources_dir = kb_root / "_sources"
    sources = sorted(sources_dir.glob("*.md"))
    if not sources:
        print(f"no sources found in {sources_dir}", file=sys.stderr)
        return 2
    stale = 0
    for src_path in sources:
        doc = load_source(src_path)
        out_path = kb_root / doc.output
        renderer = RENDERERS.get(out_path.suffix.lower())
        if renderer is None:
            print(f"{src_path}: unsupported output type {out_path.suffix}", file=sys.stderr)
            return 2
        data = renderer(doc)
        current = out_path.read_bytes() if out_path.exists() else None
        rel = out_path.relative_to(kb_root)
        if current == data:
            status = "up to date"
        elif check:
            status = "STALE"
            stale += 1
        else:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_bytes(data)
            status = "written"
        line = f"{src_path.name} -> {rel}: {status} ({len(data)} bytes)"
        if verify and out_path.exists():
            line += f"; {describe(out_path)}"
        print(line)
    if stale:
        print(f"{stale} generated file(s) are stale; run without --check", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the generator."""
    parser = argparse.ArgumentParser(
        description=(
            "Generate the PDF/DOCX articles of the Contoso sample help-desk KB "
            "from the Markdown sources in <kb-root>/_sources/."
        )
    )
    parser.add_argument(
        "--kb-root",
        type=Path,
        default=DEFAULT_KB_ROOT,
        help=f"knowledge-base root (default: {DEFAULT_KB_ROOT.relative_to(REPO_ROOT)})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if any generated file differs from its source",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="print page/paragraph statistics of each output (needs pypdf)",
    )
    args = parser.parse_args(argv)
    return build(args.kb_root.resolve(), check=args.check, verify=args.verify)


if __name__ == "__main__":
    sys.exit(main())
