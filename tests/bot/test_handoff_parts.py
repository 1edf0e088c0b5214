"""The hand-off's pure parts: which webhook shape a URL gets, Retry-After, the extractive summary, the
transcript read from a file, and a card that stays small and never reads user text as Markdown."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from bot.handoff.card import handoff_card
from bot.handoff.transcript import exchange
from bot.handoff.webhook import retry_after, webhook_format, where
from bot.memory import RatedAnswer
from rag.contract import Citation
from rag.summary import Exchange, Summary, Transcript, extractive_summary, plain
from tests.commandline import run_ragbot

WORKFLOW = (
    "https://prod-12.westeurope.logic.azure.com:443/workflows/0a1b/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=abcDEF123"
)
POWER_PLATFORM = (
    "https://default0a1b.02.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/"
    "9f8e/triggers/manual/paths/invoke?api-version=1&sig=abc"
)


@pytest.mark.parametrize(
    ("url", "setting", "expected"),
    [
        (WORKFLOW, "auto", "teams"),
        (POWER_PLATFORM, "auto", "teams"),
        ("https://hooks.contoso.com/helpdesk?token=x", "auto", "json"),
        ("https://logic.azure.com.evil.example/workflows/1", "auto", "json"),
        (WORKFLOW, "json", "json"),
        ("https://hooks.contoso.com/helpdesk", "teams", "teams"),
    ],
)
def test_teams_workflows_urls_are_recognised(url: str, setting: str, expected: str) -> None:
    assert webhook_format(url, setting) == expected


def test_logs_see_only_scheme_and_host() -> None:
    assert where(WORKFLOW) == "https://prod-12.westeurope.logic.azure.com"


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    assert retry_after("7", now) == 7.0
    assert retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert retry_after("soon", now) is None and retry_after(None, now) is None


def test_a_transcript_file_becomes_exchanges_and_other_text_stays_text() -> None:
    transcript = Transcript.from_text(
        "User: printer jammed\nBot: Open tray 2.\nIt is on the left.\nYou: thanks\n"
    )
    assert [(e.question, e.answer) for e in transcript.exchanges] == [
        ("printer jammed", "Open tray 2.\nIt is on the left."),
        ("thanks", ""),
    ]
    memo = Transcript.from_text("The VPN drops every hour. It started on Monday. " * 40)
    assert memo.exchanges == [] and memo.text.startswith("The VPN drops")
    lead = extractive_summary(memo)
    assert lead.startswith("The VPN drops every hour. It started on Monday.") and len(lead) <= 600


def test_the_extractive_summary_is_the_same_for_the_same_thread() -> None:
    thread = Transcript(
        exchanges=[
            Exchange(
                question="vpn?", answer="Use the portal [1].", sources=["[1] Portal guide (https://kb/p)"]
            ),
            Exchange(
                question="again?", answer="**Still** it [1].", sources=["[1] Portal guide (https://kb/p)"]
            ),
            Exchange(question="parking?", refused=True),
            Exchange(question="expenses?", answer="Claim in Expenses.", feedback=["dislike: wrong form"]),
        ]
    )
    summary = extractive_summary(thread)
    assert summary == extractive_summary(thread.model_copy(deep=True))
    assert summary.splitlines()[0] == (
        "The user asked 4 questions; 1 could not be answered from the knowledge base; 1 answer rated down."
    )
    assert 'Not answered: "parking?"' in summary
    assert 'Last answer given: "Claim in Expenses."' in summary
    assert 'Rated down: the answer to "expenses?" (the user said: "wrong form")' in summary
    assert "Sources shown: Portal guide (https://kb/p)" in summary, "numbered per answer, listed once"


def test_chunks_of_one_source_share_a_number() -> None:
    guide = Citation(content="a", title="Leave", url="https://kb/leave")
    other = Citation(content="b", title="Holidays", filepath="hr/holidays.md")
    rated = RatedAnswer(
        activity_id="r1",
        question="leave?",
        answer="25 days [doc2][doc1]. Holidays too [doc3]. Not [doc9].",
        citations=[guide, guide.model_copy(), other],
    )
    made = exchange(rated, [])
    assert made.answer == "25 days [1]. Holidays too [2]. Not ."
    assert made.sources == ["[1] Leave (https://kb/leave)", "[2] Holidays (hr/holidays.md)"]


def texts_by_type(node: Any, found: dict[str, list[str]]) -> dict[str, list[str]]:
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            found.setdefault(str(node.get("type")), []).append(node["text"])
        for value in node.values():
            texts_by_type(value, found)
    elif isinstance(node, list):
        for item in node:
            texts_by_type(item, found)
    return found


def test_the_card_stays_small_and_reads_no_user_text_as_markdown() -> None:
    link = "[reset your password here](https://evil.example/login)"
    huge = Exchange(
        question=f"{link} " + "why? " * 2000,
        answer="**Bold** [Portal](https://kb/p) " + "x" * 20_000,
        sources=[f"[{n}] {'Title ' * 100}" for n in range(1, 21)],
        feedback=["dislike: " + "bad " * 500],
    )
    transcript = Transcript(exchanges=[huge] * 20)
    card = handoff_card(
        Summary(text="s " * 5000, method="extractive"), transcript, facts=[("User", "N" * 5000)]
    )
    assert len(json.dumps(card).encode()) < 28 * 1024, "Teams refuses cards over 28 KB"
    texts = texts_by_type(card["body"], {})
    assert set(texts) == {"TextBlock", "TextRun"} and texts["TextBlock"] == ["Hand-off to a person"]
    assert any(t.startswith(link) for t in texts["TextRun"]), "the question is kept as the text it was"
    assert any(t.startswith("Bold Portal (https://kb/p) xxx") for t in texts["TextRun"])
    assert [t for t in texts["TextRun"] if t.startswith(("16. ", "20. "))] == ["16. ", "20. "]


def test_plain_keeps_the_words_and_the_link_targets() -> None:
    assert plain("## Steps\n1. Open **Settings** and `vpn`\n[kb](https://kb/x) or https://kb/y") == (
        "Steps\n1. Open Settings and vpn\nkb (https://kb/x) or https://kb/y"
    )


def test_config_masks_the_webhook_and_refuses_one_that_is_not_http(tmp_path: Path) -> None:
    shown = run_ragbot("config", "--json", cwd=tmp_path, env={"RAGBOT_HANDOFF_WEBHOOK": WORKFLOW})
    assert shown.returncode == 0, shown.stderr
    bot = json.loads(shown.stdout)["bot"]
    assert bot["RAGBOT_HANDOFF_WEBHOOK"] == "***" and bot["RAGBOT_HANDOFF_TIMEOUT"] == 15.0
    assert "abcDEF123" not in shown.stdout
    bad = run_ragbot(
        "config", cwd=tmp_path, env={"RAGBOT_HANDOFF_WEBHOOK": "ftp://files.example/?sig=abcDEF123"}
    )
    assert bad.returncode == 2 and "RAGBOT_HANDOFF_WEBHOOK" in bad.stderr and "http" in bad.stderr
    assert "abcDEF123" not in bad.stderr
