"""Fixtures of tests/indexing: a loopback Azure AI Search + embeddings service and a small folder of real
documents of every supported type (settings from a clean environment: `make_settings`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from search_fake import FakeSearch
from source_files import docx_bytes, pdf_bytes

from tests.loopback import serve


@pytest.fixture
async def search() -> AsyncIterator[FakeSearch]:
    fake = FakeSearch()
    async with serve(fake.handle, method="*", max_body=64 * 1024 * 1024) as fake.url:
        yield fake


LONG_SECTION = " ".join(
    f"Step {n}: open the Company Portal app, find the VPN profile number {n} and press install again."
    for n in range(20)
)


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    """A small knowledge base with one file of each type plus files that must be skipped."""
    root = tmp_path / "kb"
    (root / "it").mkdir(parents=True)
    (root / "hr").mkdir()
    (root / "_drafts").mkdir()
    (root / "it" / "vpn.md").write_text(
        "---\ntitle: Connect to the VPN\nurl: https://kb.example/it/vpn\nlast_modified: 2025-03-12\n"
        "groups: [staff, contractors]\nusers: [oid-alex]\n"
        "---\n\n# Connect to the VPN\n\nOpen the VPN app and sign in.\n\n"
        f"## Troubleshooting\n\n{LONG_SECTION}\n",
        encoding="utf-8",
    )
    (root / "it" / "printers.txt").write_text("Printers\n\nUse the FollowMe queue to print anywhere.\n")
    (root / "hr" / "holidays.html").write_text(
        "<html><head><title>Public holidays | Contoso</title>"
        '<link rel="canonical" href="https://kb.example/hr/holidays"></head>'
        "<body><nav>Home | HR</nav><main><h1>Public holidays</h1><p>There are eight public holidays."
        "</p><h2>Dates</h2><ul><li>1 January</li><li>25 December</li></ul></main>"
        "<footer>Copyright</footer></body></html>",
        encoding="utf-8",
    )
    (root / "hr" / "expenses.pdf").write_bytes(
        pdf_bytes(
            [("Scope", "This policy covers all travel."), ("Claims", "Claim within 30 days.")], "Expenses"
        )
    )
    (root / "it" / "laptops.docx").write_bytes(docx_bytes())
    (root / "README.md").write_text("# About this folder\n")
    (root / "it" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "_drafts" / "draft.md").write_text("# Not yet\n")
    return root
