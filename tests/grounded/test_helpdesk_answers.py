"""Answers a help-desk user can act on: each failure seen with the embedded default (extractive answers)
on the sample knowledge base and on documentation nobody here wrote, as a test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.contract import DOC_MARKER, Citation
from rag.grounded.extractive import ExtractiveGenerator
from rag.local.embedder import LocalEmbedder

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "helpdesk"
PAGE_2 = """Contoso Ltd. - Travel and Expense Policy
3. Per diem and travel allowances
3.1 UK day trips
For trips of more than 5 hours and more than 10 miles from your usual office, claim lunch up to £15
with a receipt. Trips over 10 hours may also claim an evening meal up to £25.
3.2 UK overnight per diem
Each night away in the UK earns a flat per diem of £45 covering lunch, dinner and incidentals. No
receipts are needed, but you cannot also claim individual meals for that day. Breakfast is included in
the hotel booking.
3.3 International per diem (per night)
Band Examples Rate
A USA, Switzerland, Japan, Singapore £75
B Most EU countries, Canada, Australia £55
C All other countries £40
On the day you return home, 75% of the rate applies.
3.4 Mileage
Own car: 45p per mile for the first 10,000 business miles in the tax year, then 25p. Do not include
your normal commute.
https://kb.contoso.example/hr/expense-policy    Page 2 of 3"""
PAGE_1_END = """- Your line manager approves claims; claims over £1,000 also need the cost centre owner.
Nobody may approve their own claim.
https://kb.contoso.example/hr/expense-policy    Page 1 of 3"""
SORTING_HTML_TEXT = """# Sorting Techniques¶

Python lists have a built-in list.sort() method that modifies the list in-place.

## Sorting Basics¶

A simple ascending sort is very easy: just call the sorted() function. It returns a new list in sorted order:

```
>>> sorted([5, 2, 3, 1, 4])
[1, 2, 3, 4, 5]
```

You can also use the list.sort() method. It modifies the list in-place (and returns None)."""
SORTING_RST = """===============
Sorting HOW TO
===============

Key Functions
=============

Both list.sort() and sorted() have a key parameter to specify a function to be called on each list
element prior to making comparisons. For example, here's a case-insensitive string comparison::

    >>> sorted("This is a test string from Andrew".split(), key=str.casefold)
    ['a', 'Andrew', 'from', 'is', 'string', 'test', 'This']

The value of the key parameter should be a function that takes a single argument."""


def article(path: str, *, sections: bool = True) -> list[Citation]:
    """A sample article as the index holds it: one citation per `##` section (the title goes with the
    first), or the whole body as one."""
    text = (SAMPLES / path).read_text(encoding="utf-8")
    front, body = text.split("\n---\n", 1)
    title = re.search(r"^title: (.*)$", front, re.M)
    assert title
    pieces = re.split(r"\n(?=## )", body.strip()) if sections else [body.strip()]
    return [
        Citation(content=piece, title=title.group(1), filepath=path, chunk_id=str(number))
        for number, piece in enumerate(pieces)
    ]


def steps_of(path: str, heading: str) -> list[str]:
    body = (SAMPLES / path).read_text(encoding="utf-8").split(f"## {heading}\n", 1)[1].split("\n## ")[0]
    return [m.group(1) for m in re.finditer(r"^\d+\. (.*)$", body, re.M)]


def plain(text: str) -> str:
    return re.sub(r" \[doc\d+\]", "", text)


def quoted_steps(answer: str) -> list[str]:
    """The numbered lines of the answer, without numbers or markers."""
    return [re.sub(r"^\d+\. ", "", line) for line in plain(answer).splitlines() if re.match(r"^\d+\. ", line)]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture(params=["lexical", "minilm"])
def generator(request: pytest.FixtureRequest, embedder: LocalEmbedder) -> ExtractiveGenerator:
    """The generator as `make run` builds it (with MiniLM) and without an embedder."""
    return ExtractiveGenerator(embedder if request.param == "minilm" else None)


async def answer(
    generator: ExtractiveGenerator, question: str, documents: list[Citation], *queries: str
) -> str:
    deltas = [d async for d in generator.stream([], question, documents, list(queries) or [question])]
    return "".join(d.content for d in deltas)


def step_same(quoted: str, source: str) -> bool:
    """A quoted step is the source's step (the marker goes before its final full stop)."""
    return quoted.rstrip(".") == source.rstrip(".")


async def test_vpn_without_a_platform_gives_each_platform_under_its_label(
    generator: ExtractiveGenerator,
) -> None:
    documents = [*article("it/vpn-windows.md"), *article("it/vpn-macos.md")]
    text = await answer(generator, "How do I connect to the VPN?", documents)
    windows, macos = steps_of("it/vpn-windows.md", "Connect"), steps_of("it/vpn-macos.md", "Connect")
    assert "**On Windows 11**" in text and "**On macOS**" in text
    under_windows = text.split("**On Windows 11**")[1].split("**On macOS**")[0]
    under_macos = text.split("**On macOS**")[1].split("**On Windows 11**")[0]
    assert all(map(step_same, quoted_steps(under_windows), windows)) and len(quoted_steps(under_windows)) == 6
    assert all(map(step_same, quoted_steps(under_macos), macos)) and len(quoted_steps(under_macos)) == 5


async def test_vpn_on_windows_gives_all_six_steps_in_order_and_nothing_about_macs(
    generator: ExtractiveGenerator,
) -> None:
    documents = [*article("it/vpn-windows.md"), *article("it/vpn-macos.md")]
    text = await answer(generator, "How do I connect to the VPN on Windows?", documents)
    quoted = quoted_steps(text)
    assert len(quoted) == 6 and all(map(step_same, quoted, steps_of("it/vpn-windows.md", "Connect")))
    assert "Click **Connect**" in quoted[2]  # a two-word step is a step too
    assert "Control Centre" not in text and "macOS" not in text


async def test_and_on_a_mac_gives_the_mac_steps(generator: ExtractiveGenerator) -> None:
    documents = [*article("it/vpn-macos.md"), *article("it/vpn-windows.md")]
    text = await answer(generator, "and on a Mac?", documents, "How do I connect to the VPN on a Mac")
    assert all(map(step_same, quoted_steps(text), steps_of("it/vpn-macos.md", "Connect")))
    assert len(quoted_steps(text)) == 5 and "taskbar" not in text


async def test_password_reset_gives_the_five_steps(generator: ExtractiveGenerator) -> None:
    documents = [*article("it/password-self-service-reset.md"), *article("it/password-expiry-policy.md")]
    text = await answer(generator, "How do I reset my password?", documents)
    quoted = quoted_steps(text)
    assert len(quoted) == 5
    assert all(
        map(step_same, quoted, steps_of("it/password-self-service-reset.md", "Reset a forgotten password"))
    )


async def test_a_procedure_cut_between_two_chunks_comes_whole(generator: ExtractiveGenerator) -> None:
    body = article("it/mfa-authenticator-setup.md", sections=False)[0].content
    cut = body.index("-digit number shown")
    first, second = body[: body.index("\n9. ")], body[cut:]  # the second chunk starts in the overlap
    documents = [
        Citation(content=first, title="Set up MFA", filepath="mfa.md", chunk_id="0"),
        Citation(content=second, title="Set up MFA", filepath="mfa.md", chunk_id="1"),
    ]
    text = await answer(generator, "how do i set up the authenticator app for mfa", documents)
    quoted = quoted_steps(text)
    assert len(quoted) == 9 and all(
        map(step_same, quoted, steps_of("it/mfa-authenticator-setup.md", "Steps"))
    )
    assert "-digit" not in text.replace("two-digit", "")  # the broken overlap line is not quoted
    assert text.rstrip().endswith("[doc2].")  # step 9 is cited from the chunk it is in


async def test_per_diem_is_more_than_its_heading_and_carries_no_page_furniture(
    generator: ExtractiveGenerator,
) -> None:
    documents = [
        Citation(content=PAGE_2, title="Travel and Expense Policy", filepath="hr/expense-policy.pdf", page=2),
        Citation(
            content=PAGE_1_END, title="Travel and Expense Policy", filepath="hr/expense-policy.pdf", page=1
        ),
    ]
    text = await answer(generator, "per diem for Germany", documents)
    assert "£" in text
    assert not any(plain(line).strip(" .") == "Per diem and travel allowances" for line in text.splitlines())
    assert "Page" not in text and "Contoso Ltd." not in text and "kb.contoso.example" not in text


async def test_the_page_footer_of_a_pdf_never_leaks(generator: ExtractiveGenerator) -> None:
    documents = [
        Citation(content=PAGE_1_END, title="Travel and Expense Policy", filepath="policy.pdf", page=1),
    ]
    text = await answer(generator, "who approves my expense claims", documents)
    assert "line manager approves claims" in text and "Nobody may approve their own claim" in text
    assert "Page 1 of 3" not in text and "https://" not in text


async def test_a_sorting_question_gets_the_code_and_no_permalink_marks(
    generator: ExtractiveGenerator,
) -> None:
    documents = [
        Citation(content=SORTING_HTML_TEXT, title="Sorting Techniques", filepath="howto/sorting.html")
    ]
    text = await answer(generator, "how do I sort a list in ascending order", documents)
    assert "in sorted order [doc1]:" in text
    assert "```\n>>> sorted([5, 2, 3, 1, 4])\n[1, 2, 3, 4, 5]\n```" in text
    assert "¶" not in text


async def test_restructuredtext_underlines_are_headings_and_literal_blocks_code(
    generator: ExtractiveGenerator,
) -> None:
    documents = [Citation(content=SORTING_RST, title="Sorting HOW TO", filepath="howto/sorting.rst")]
    text = await answer(generator, "case-insensitive sort with a key function", documents)
    assert "====" not in text and "Sorting HOW TO" not in text
    assert "case-insensitive string comparison [doc1]:" in text  # "::" reads as ":"
    assert '```\n>>> sorted("This is a test string from Andrew".split(), key=str.casefold)\n' in text


async def test_a_question_in_two_parts_is_answered_part_by_part(generator: ExtractiveGenerator) -> None:
    documents = [*article("it/password-self-service-reset.md"), *article("hr/annual-leave.md")]
    question = "How do I reset my password and how many days of annual leave do I get?"
    text = await answer(
        generator, question, documents, "How do I reset my password", "how many days of annual leave do I get"
    )
    first, second = text.split("**How many days of annual leave do I get?**")
    assert first.startswith("**How do I reset my password?**") and len(quoted_steps(first)) == 5
    assert "25 days" in second


async def test_a_part_nothing_answers_is_named(generator: ExtractiveGenerator) -> None:
    documents = article("it/conference-room-booking.md")
    question = "how do I book a meeting room and who is the CEO of Contoso?"
    text = await answer(
        generator, question, documents, "how do I book a meeting room", "who is the CEO of Contoso"
    )
    assert len(quoted_steps(text)) == 5
    assert "**Who is the CEO of Contoso?**\nThe documents found say nothing about this." in text


async def test_headings_and_link_only_lines_are_never_quoted(generator: ExtractiveGenerator) -> None:
    documents = article("it/mfa-authenticator-setup.md")
    text = await answer(generator, "related articles about MFA on a new phone", documents)
    for line in plain(text).splitlines():
        assert not re.fullmatch(r"\W*\[[^\]]*\]\([^)]*\)\W*", line)
        assert line.strip(" *.") not in {"Related articles", "Steps", "Tips", "What you need"}
    assert DOC_MARKER.search(text)


async def test_an_error_code_gets_its_own_section_though_the_title_names_every_code(
    generator: ExtractiveGenerator,
) -> None:
    documents = [*article("it/vpn-error-codes.md"), *article("it/vpn-macos.md")]
    assert "691" in documents[0].title  # "VPN error codes and fixes (809, 691, 812, 13801, 720)"
    text = await answer(generator, "what does vpn error 691 mean", documents)
    assert "is not recognized" in text and "IKEv2" not in text
    assert [s[:20] for s in quoted_steps(text)] == [
        "Check you are signin",
        "Reset or unlock your",
        "Wait 15 minutes for ",
    ]
    text = await answer(generator, "vpn not working error 809", documents)
    assert quoted_steps(text)[:1] == [
        "Connect using the fallback profile **Contoso-VPN-SSTP**, which uses TCP port 443."
    ]
