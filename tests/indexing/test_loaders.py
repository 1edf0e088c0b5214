"""Loaders on real files: PDFs and DOCX generated here, Markdown, HTML and text written here."""

from __future__ import annotations

from pathlib import Path

import pytest
from source_files import docx_bytes, pdf_bytes

from indexing.documents import LoadError
from indexing.loaders import iso_utc, load
from indexing.sources import discover


def test_markdown_front_matter_headings_and_code_fences() -> None:
    text = (
        "---\ntitle: Reset your password\nurl: https://kb.example/pw\ndate: 2024-05-01T10:30:00+02:00\n"
        "groups: hr, managers\noids: [oid-1, ' oid-2 ']\n"
        "---\n\nIntro line.\n\n## Steps\n\n1. Open the portal.\n\n"
        "```bash\n# not a heading\n"
        "```\n\n### On a Mac\n\nUse Safari.\n\n## Help\n\nCall the desk.\n"
    )
    doc = load(text.encode(), Path("pw.md"))
    assert doc.title == "Reset your password" and doc.url == "https://kb.example/pw"
    assert doc.last_modified == "2024-05-01T08:30:00Z" and doc.group_ids == ["hr", "managers"]
    assert doc.user_ids == ["oid-1", "oid-2"]  # `oids`, as Microsoft's samples name it, reads as `users`
    assert [s.heading_path for s in doc.sections] == [(), ("Steps",), ("Steps", "On a Mac"), ("Help",)]
    assert "# not a heading" in doc.sections[1].text
    assert doc.sections[2].text.startswith("### On a Mac")


def test_markdown_without_front_matter_takes_the_first_heading() -> None:
    assert load(b"Some text\n\n# The Title\n\nbody\n", Path("x.md")).title == "The Title"
    assert load(b"Intro\n\n## Reporting bugs\n\nbody\n", Path("bugs.md")).title == "Reporting bugs"
    setext = load(
        b"Reporting bugs\n==============\n\nOpen an issue.\n\nDetails\n-------\n\nMore.\n", Path("bugs.md")
    )
    assert setext.title == "Reporting bugs"
    assert [s.heading_path for s in setext.sections] == [("Reporting bugs",), ("Reporting bugs", "Details")]
    assert "=====" not in "".join(s.text for s in setext.sections)
    assert load(b"Bugs\n====\n\nOpen an issue.\n", Path("bugs.txt")).title == "Bugs"


def test_front_matter_that_is_not_yaml_is_read_leniently_with_a_warning() -> None:
    text = b"---\ntitle: VPN: connect on Windows\nurl: https://kb.example/vpn\n---\n\nStep one.\n"
    doc = load(text, Path("kb/vpn.md"))
    assert doc.title == "VPN: connect on Windows" and doc.url == "https://kb.example/vpn"
    assert len(doc.warnings) == 1 and doc.warnings[0].startswith("kb/vpn.md: line 2: front matter")
    assert "Step one." in doc.sections[0].text
    assert load(b"---\ntitle: [open\n---\nbody\n", Path("x.md")).warnings


def test_text_encodings_by_bom_and_a_cp1252_fallback() -> None:
    assert (
        load("caf\u00e9 cr\u00e8me".encode("utf-16"), Path("x.txt")).sections[0].text
        == "caf\u00e9 cr\u00e8me"
    )
    assert load(b"\xef\xbb\xbf# Caf\xc3\xa9\n", Path("x.md")).title == "Caf\u00e9"
    latin = load("ok\nna\u00efve \u20ac5".encode("cp1252"), Path("kb/old.txt"))
    assert latin.sections[0].text == "ok\nna\u00efve \u20ac5"
    assert latin.warnings == ["kb/old.txt: line 2: not UTF-8, read as Windows-1252 (save the file as UTF-8)"]
    with pytest.raises(LoadError, match="NUL"):
        load(b"a\x00b", Path("x.txt"))


def test_html_main_content_title_canonical_and_groups() -> None:
    html = (
        "<html><head><title>Guest Wi-Fi | Contoso Help</title><meta name='groups' content='staff'>"
        "<meta name='users' content='oid-1, oid-2'>"
        "<link rel='canonical' href='https://kb.example/wifi'>"
        "<meta name='last-modified' content='2025-01-08'>"
        "<script>var x = 1;</script></head><body><header>Site header</header><nav>Menu</nav>"
        "<main><h1>Guest Wi-Fi<a class='headerlink' href='#g'>\u00b6</a></h1>"
        "<p>Join <strong>Contoso-Guest</strong>.</p>"
        "<h2>Limits</h2><ul><li>10 Mbps</li><li>24 hours</li></ul>"
        "<table><tr><th>Site</th><th>SSID</th></tr><tr><td>London</td><td>CG-LDN</td></tr></table>"
        "<aside>Related</aside></main><footer>Footer</footer></body></html>"
    )
    doc = load(html.encode(), Path("wifi.html"))
    assert doc.title == "Guest Wi-Fi" and doc.url == "https://kb.example/wifi"
    assert doc.group_ids == ["staff"] and doc.last_modified == "2025-01-08T00:00:00Z"
    assert doc.user_ids == ["oid-1", "oid-2"]
    text = "\n".join(s.text for s in doc.sections)
    assert "Join Contoso-Guest." in text and "- 10 Mbps" in text and "London | CG-LDN" in text
    for chrome in ("Site header", "Menu", "Footer", "Related", "var x"):
        assert chrome not in text
    assert doc.sections[-1].heading_path == ("Guest Wi-Fi", "Limits")
    assert "\u00b6" not in text


def test_html_code_keeps_its_lines_as_a_fenced_block() -> None:
    html = (
        "<main><h2>Sorting Basics<a class='headerlink' href='#b'>\u00b6</a></h2>"
        "<p>It returns a new sorted list:</p><div class='highlight-pycon notranslate'><div class='highlight'>"
        "<pre><span class='gp'>&gt;&gt;&gt; </span><span>sorted</span>([5, 2, 3])\n[2, 3, 5]\n</pre>"
        "</div></div></main>"
    )
    text = "\n".join(s.text for s in load(html.encode(), Path("sorting.html")).sections)
    assert "It returns a new sorted list:\n\n```\n>>> sorted([5, 2, 3])\n[2, 3, 5]\n```" in text


def test_pdf_pages_outline_and_failures() -> None:
    data = pdf_bytes(
        [("Scope", "This policy covers travel."), ("Claims", "Claim within 30 days.")], "Expenses"
    )
    doc = load(data, Path("e.pdf"))
    assert doc.title == "Expenses"
    assert [(s.page, s.heading_path) for s in doc.sections] == [(1, ("Scope",)), (2, ("Claims",))]
    assert "Claim within 30 days." in doc.sections[1].text

    with pytest.raises(LoadError, match="encrypted PDF"):
        load(pdf_bytes([("A", "secret")], password="pw"), Path("locked.pdf"))
    with pytest.raises(LoadError, match="unreadable PDF"):
        load(data[: len(data) // 3], Path("cut.pdf"))


def test_docx_headings_lists_tables_and_corrupt_file() -> None:
    doc = load(docx_bytes(), Path("guide.docx"))
    assert doc.title == "Laptop Guide" and doc.last_modified
    assert [s.heading_path for s in doc.sections] == [
        ("Getting a laptop",),
        ("Getting a laptop", "Models"),
        ("Returns",),
    ]
    models = doc.sections[1].text
    assert "- Dell Latitude for most roles" in models and "Designer | MacBook Air" in models
    with pytest.raises(LoadError, match="unreadable DOCX"):
        load(b"PK\x03\x04broken", Path("bad.docx"))


def test_dates_normalise_to_utc() -> None:
    assert iso_utc("2025-03-12") == "2025-03-12T00:00:00Z"
    assert iso_utc("2025-03-12T10:00:00-05:00") == "2025-03-12T15:00:00Z"
    assert iso_utc("next tuesday") is None


def test_discovery_skips_hidden_folders_readme_and_unknown_types(kb: Path) -> None:
    found = discover([kb])
    assert [f.filepath for f in found.files] == [
        "hr/expenses.pdf",
        "hr/holidays.html",
        "it/laptops.docx",
        "it/printers.txt",
        "it/vpn.md",
    ]
    assert sorted(p.name for p in found.skipped) == ["README.md", "logo.png"]
    twice = discover([kb / "it", kb / "it"])
    assert len(twice.files) == 3 and twice.errors == []
    other = kb.parent / "other"
    other.mkdir()
    (other / "vpn.md").write_text("# Another VPN page\n")
    clash = discover([kb / "it" / "vpn.md", other])
    assert [f.filepath for f in clash.files] == ["vpn.md"]
    assert clash.errors == [
        (str(other / "vpn.md"), f"same relative path as {kb / 'it' / 'vpn.md'}: index the folders separately")
    ]


def test_pdf_and_docx_keep_their_metadata_urls_and_drop_page_furniture() -> None:
    """The sample's PDF carries its URL in /Subject and in every page footer, the DOCX in dc:identifier."""
    samples = Path(__file__).resolve().parents[2] / "samples" / "helpdesk"
    pdf = load((samples / "hr" / "expense-policy.pdf").read_bytes(), Path("expense-policy.pdf"))
    assert pdf.url == "https://kb.contoso.example/hr/expense-policy"
    text = "\n".join(section.text for section in pdf.sections)
    assert "Page 2 of 3" not in text and "Contoso Ltd. - Travel and Expense Policy" not in text
    assert "Per diem" in text
    guide = load((samples / "it" / "new-starter-it-guide.docx").read_bytes(), Path("guide.docx"))
    assert guide.url == "https://kb.contoso.example/it/new-starter-it-guide"
    assert load(docx_bytes(), Path("guide.docx")).url is None  # no identifier: no url
