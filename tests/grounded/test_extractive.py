"""The extractive generator: answers read as answers, cite every piece, stay bounded and never repeat."""

from __future__ import annotations

import re

from rag.contract import DOC_MARKER, REFUSAL, AnswerBuilder, Citation
from rag.grounded.extractive import ExtractiveGenerator
from rag.grounded.residue import clean
from rag.grounded.units import points_elsewhere, split_units

VPN_ERRORS = """## Error 809

**"The remote server is not responding."**

Cause: the network you are on blocks the IKEv2 ports (UDP 500 and 4500).

Fix:
1. Connect using the fallback profile Contoso-VPN-SSTP, which uses TCP port 443.
2. If that also fails, tether to your phone's mobile hotspot and try again.

## Error 691

**"The user name and password combination you provided is not recognized."**

Cause: wrong password, an expired password or a locked account.

Fix:
1. Check you are signing in with your full email address.
2. Reset or unlock your account at the password portal."""

LEAVE = """# Annual leave

This article covers paid holiday and how to book it.

## Booking leave

1. Sign in to PeopleHub.
2. Go to Time off and choose Annual leave.
3. Select the dates and click Submit.

Your manager should respond within 5 working days. Approved leave appears in the team calendar.

## Carry-over

You can carry over up to 5 days into the next holiday year. Contoso does not pay for unused leave."""

LEAVE_COPY = """## Reminder

You can carry over up to 5 days into the next holiday year. Ask HR about exceptions for long-term sickness."""


def docs(*contents: str) -> list[Citation]:
    return [
        Citation(content=c, title=f"doc {i}", filepath=f"d{i}.md") for i, c in enumerate(contents, start=1)
    ]


async def run(
    question: str, documents: list[Citation], generator: ExtractiveGenerator | None = None
) -> list[str]:
    generator = generator or ExtractiveGenerator()
    return [d.content async for d in generator.stream([], question, documents, [question]) if d.content]


def plain(piece: str) -> str:
    """A streamed piece without separator, list number or marker."""
    return re.sub(r"^\s*(?:\d+\.|-)\s+", "", re.sub(r" \[doc\d+\]", "", piece).strip()).strip()


async def test_a_code_question_gets_that_section_with_its_steps_in_order() -> None:
    pieces = await run("what does vpn error 691 mean", docs(VPN_ERRORS))
    text = "".join(pieces)
    assert "not recognized" in text and "wrong password" in text
    assert text.index("full email address") < text.index("Reset or unlock")
    assert "809" not in text and "IKEv2" not in text
    assert "1. Check you are signing in" in text and "2. Reset or unlock" in text


async def test_every_piece_is_cited_with_the_document_it_comes_from() -> None:
    documents = docs(VPN_ERRORS, LEAVE)
    for question in ("how do I book annual leave", "error 809 fix", "unused leave carry over"):
        pieces = await run(question, documents)
        assert pieces
        for piece in pieces:
            markers = DOC_MARKER.findall(piece)
            assert len(markers) == 1, piece
            number = int(markers[0])
            assert plain(piece).rstrip(".") in documents[number - 1].content


async def test_steps_of_a_procedure_come_whole_and_numbered() -> None:
    text = "".join(await run("how do I book leave in PeopleHub", docs(LEAVE)))
    assert re.search(r"1\. Sign in to PeopleHub \[doc1\]\.\n2\. Go to Time off.*\n3\. Select the dates", text)
    assert "This article covers" not in text  # introductions are not answers


async def test_no_sentence_is_repeated_across_documents() -> None:
    pieces = await run("how many days can I carry over", docs(LEAVE, LEAVE_COPY))
    bodies = [plain(p) for p in pieces]
    assert len(bodies) == len(set(bodies))
    assert sum("carry over up to 5 days" in b for b in bodies) == 1


async def test_the_answer_is_bounded() -> None:
    long_doc = "\n\n".join(
        f"Printer tip {i}: restart the printer queue and try printing again." for i in range(60)
    )
    generator = ExtractiveGenerator(max_units=4, max_chars=300)
    pieces = await run(
        "printer queue restart", docs(long_doc, long_doc.replace("Printer", "Plotter")), generator
    )
    assert 1 <= len(pieces) <= 4
    assert sum(len(plain(p)) for p in pieces) <= 300 + len(plain(pieces[0]))


async def test_streaming_is_one_unit_per_delta_and_folds_to_the_text() -> None:
    generator = ExtractiveGenerator()
    deltas = [d async for d in generator.stream([], "book leave", docs(LEAVE), ["book leave"])]
    assert deltas[-1].finish_reason == "stop" and deltas[-1].content == ""
    assert all(len(DOC_MARKER.findall(d.content)) == 1 for d in deltas[:-1])
    builder = AnswerBuilder()
    for delta in deltas:
        builder.add(delta)
    assert builder.build().content == "".join(d.content for d in deltas)


async def test_no_documents_means_the_refusal() -> None:
    assert await run("anything", []) == [REFUSAL]


def test_units_keep_headings_lists_and_tables() -> None:
    content = (
        "## Sizes\n\n| Model | Memory size |\n|---|---|\n| Standard | 16 GB |\n\n- first bullet item here\n\n"
        "## Holidays\nDate | Day | Holiday\n1 January 2025 | Wednesday | New Year's Day\n"
    )
    units = split_units(1, content)
    assert [(u.kind, u.heading, u.text) for u in units] == [
        ("row", "Sizes", "Standard: 16 GB"),
        ("item", "Sizes", "first bullet item here"),
        ("row", "Holidays", "1 January 2025: Wednesday, New Year's Day"),
    ]


def test_numbered_pdf_section_titles_are_headings_not_answers() -> None:
    content = (
        "3.3 International per diem\nOn the day you return home, 75% of the rate applies.\n3.4 Mileage\n"
    )
    units = split_units(1, content)
    assert [(u.heading, u.text) for u in units] == [
        ("International per diem", "On the day you return home, 75% of the rate applies.")
    ]


def test_a_pointer_sentence_is_left_out_but_an_answer_with_a_pointer_is_kept() -> None:
    assert points_elsewhere("For time off when you are unwell, see [Sick leave](https://kb.example/sick).")
    assert points_elsewhere("This article covers paid holiday.")
    assert points_elsewhere("[Lost or stolen phone: regain MFA access](https://kb.example/mfa-lost-phone)")
    assert not points_elsewhere(
        "Full-time employees get 25 days of annual leave per holiday year, plus public holidays "
        "(see [Public holidays 2025](https://kb.example/holidays))."
    )


async def test_the_entitlement_sentence_answers_despite_its_link() -> None:
    answer = await run(
        "How many days of annual leave do I get?",
        docs(
            "## Entitlement\n\n- Full-time employees get **25 days** of annual leave per holiday year, "
            "**plus** public holidays (see [Public holidays 2025](https://kb.example/holidays)).\n"
            "- Part-time employees get a pro-rata entitlement.\n",
            "## Cancelling\n\nIf you cancel, the annual leave days are returned to your balance.\n",
        ),
    )
    assert "25 days" in plain(answer[0])


def test_a_numbered_pdf_title_after_a_bulleted_list_is_a_heading() -> None:
    content = (
        "4. Corporate card\n- Monthly limit £5,000; single transaction limit £2,000.\n"
        "5. Not reimbursed\nTraffic and parking fines, home-to-office travel, minibar and films.\n"
    )
    assert [(u.kind, u.heading, u.text) for u in split_units(1, content)] == [
        ("item", "Corporate card", "Monthly limit £5,000; single transaction limit £2,000."),
        (
            "sentence",
            "Not reimbursed",
            "Traffic and parking fines, home-to-office travel, minibar and films.",
        ),
    ]


def test_the_cleaner_and_the_splitter_agree_where_a_code_block_ends() -> None:
    """A ``` line inside a ~~~ block is code: the cleaner used to read it as the block's end, so it
    dropped the link line inside the block and kept the page footer after it."""
    content = (
        "Start a code block with three backticks:\n\n~~~\n```\nhttps://intranet.example/code-style\n~~~\n\n"
        "Close it the same way.\nhttps://kb.example/markdown    Page 2 of 3"
    )
    units = split_units(1, clean(content))
    assert [(u.kind, u.text) for u in units] == [
        ("sentence", "Start a code block with three backticks:"),
        ("code", "```\nhttps://intranet.example/code-style"),
        ("sentence", "Close it the same way."),
    ]
