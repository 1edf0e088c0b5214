"""Real PDF and DOCX files made in the test run (fpdf2, python-docx), for the loaders and the pipeline."""

from __future__ import annotations

import io

import docx
from fpdf import FPDF


def pdf_bytes(pages: list[tuple[str, str]], title: str | None = None, password: str | None = None) -> bytes:
    """A real PDF: one page per (outline heading, text)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for heading, text in pages:
        pdf.add_page()
        pdf.start_section(heading)
        pdf.multi_cell(0, 6, text)
    if title:
        pdf.set_title(title)
    if password:
        pdf.set_encryption(owner_password=password + "-owner", user_password=password)
    return bytes(pdf.output())


def docx_bytes() -> bytes:
    """A real DOCX with a title, two heading levels, a bullet list and a table."""
    document = docx.Document()
    document.core_properties.title = "Laptop Guide"
    document.add_heading("Getting a laptop", level=1)
    document.add_paragraph("Every new starter receives a laptop on the first day.")
    document.add_heading("Models", level=2)
    document.add_paragraph("Dell Latitude for most roles", style="List Bullet")
    document.add_paragraph("MacBook Air for designers", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Role", "Model"
    table.rows[1].cells[0].text, table.rows[1].cells[1].text = "Designer", "MacBook Air"
    document.add_heading("Returns", level=1)
    document.add_paragraph("Return the laptop to the IT Bar on your last day.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
