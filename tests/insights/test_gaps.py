"""`ragbot gaps` on a real SQLite state file seeded with refusals, thumbs-down and comments: paraphrases
land in one group, groups rank by count with their sources, `--since` filters, and thumbs-down answers
export as rows `ragbot eval` reads."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
from pathlib import Path

import pytest

from bot.feedback import FeedbackRecord, save_feedback
from bot.refusals import RefusalRecord, save_refusal
from bot.state import STATE_FILE
from bot.state.sqlite import SqliteStore
from rag.contract import REFUSAL, Citation
from ragbot.evaluation.questions import read_questions
from tests.commandline import run_ragbot

PAYROLL = (
    "Where is the payroll calendar?",
    "when is payroll run",
    "payroll schedule 2026",
    "where's the payroll calendar for this year?",
)
PETS = ("Can I bring my dog to the office?", "are pets allowed at work")
VPN_DOC = Citation(content="Open Contoso-VPN.", title="VPN on Windows", filepath="it/vpn-windows.md")
PDF_PAGE = Citation(content="Per diem £45.", title="Expenses", filepath="hr/expense-policy.pdf", page=2)


def rating(
    reply: str, reaction: str, question: str, comment: str = "", user: str = "aad-1", **kw: str
) -> FeedbackRecord:
    return FeedbackRecord(
        reply_to_id=reply,
        reaction=reaction,
        comment=comment,
        channel_id="msteams",
        conversation_id="a:1",
        user_id=user,
        question=question,
        answer="Open the app [doc1].",
        citations=[VPN_DOC, PDF_PAGE] if "vpn" in question.lower() else [],
        **kw,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gaps")

    async def seed() -> None:
        store = SqliteStore(folder / STATE_FILE)
        await store.open()
        for n, question in enumerate(PAYROLL + PETS):
            await save_refusal(
                store,
                RefusalRecord(
                    question=question,
                    channel_id="webchat",
                    conversation_id=f"c{n}",
                    at=f"2026-11-0{n + 1}T09:00:00+00:00",
                ),
            )
        await save_refusal(
            store,
            RefusalRecord(
                question="Old question about parking",
                channel_id="webchat",
                conversation_id="old",
                at="2026-01-05T09:00:00+00:00",
            ),
        )
        await save_feedback(
            store,
            rating(
                "r1",
                "dislike",
                "VPN drops every 30 minutes",
                "Steps are for Windows 10",
                at="2026-11-10T10:00:00+00:00",
            ),
        )
        await save_feedback(
            store,
            rating(
                "r1",
                "dislike",
                "VPN drops every 30 minutes",
                "",
                user="aad-2",
                at="2026-11-10T11:00:00+00:00",
            ),
        )
        await save_feedback(
            store,
            rating(
                "r2",
                "dislike",
                "vpn disconnects after half an hour",
                "still broken",
                at="2026-11-11T10:00:00+00:00",
            ),
        )
        await save_feedback(
            store,
            rating(
                "r3",
                "like",
                "How do I add a printer?",
                "Worked, but add a screenshot",
                at="2026-11-12T10:00:00+00:00",
            ),
        )
        await save_feedback(
            store, rating("r4", "like", "How many days of leave do I get?", at="2026-11-12T11:00:00+00:00")
        )
        refused_then_rated = rating(
            "r5", "dislike", PETS[1], "we need a pet policy", at="2026-11-06T09:05:00+00:00"
        )
        await save_feedback(
            store,
            refused_then_rated.model_copy(
                update={"answer": REFUSAL, "conversation_id": "c5", "channel_id": "webchat"}
            ),
        )
        await store.aclose()

    asyncio.run(seed())
    return folder


def gaps(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_ragbot("gaps", *args, cwd=data_dir, env={"RAGBOT_DATA_DIR": str(data_dir)})
    assert done.returncode == 0, done.stderr
    return done


def test_paraphrases_group_together_and_rank_by_count(data_dir: Path) -> None:
    found = json.loads(gaps(data_dir, "--format", "json", "--since", "2026-11-01").stdout)
    groups = [(g["count"], {g["question"], *g["examples"]}) for g in found]
    assert groups[0] == (4, set(PAYROLL))
    assert (2, set(PETS)) in groups
    pets = next(g for g in found if g["question"] in PETS)
    assert (pets["refused"], pets["disliked"], pets["comment_texts"]) == (2, 0, ["we need a pet policy"])
    vpn = next(g for g in found if g["disliked"])
    assert vpn["count"] == 3 and vpn["disliked"] == 3 and vpn["refused"] == 0
    assert vpn["sources"] == ["it/vpn-windows.md", "hr/expense-policy.pdf#page=2"]
    assert vpn["comment_texts"] == ["still broken", "Steps are for Windows 10"]
    printer = next(g for g in found if g["question"] == "How do I add a printer?")
    assert (printer["count"], printer["comments"], printer["refused"], printer["disliked"]) == (1, 1, 0, 0)
    questions = {q for g in found for q in [g["question"], *g["examples"]]}
    assert "How many days of leave do I get?" not in questions  # a like without a comment is no gap
    assert "Old question about parking" not in questions  # before --since
    assert [g["rank"] for g in found] == list(range(1, len(found) + 1))
    assert [g["count"] for g in found] == sorted((g["count"] for g in found), reverse=True)


def test_markdown_and_csv_reports(data_dir: Path, tmp_path: Path) -> None:
    report = gaps(data_dir).stdout
    assert report.startswith("# Knowledge gaps")
    assert "Old question about parking" in report  # no --since: everything
    assert "`it/vpn-windows.md`" in report and "comment: Steps are for Windows 10" in report

    out = tmp_path / "gaps.csv"
    done = gaps(data_dir, "--format", "csv", "--out", str(out), "--since", "2026-11-01")
    assert done.stdout == "" and "gaps to" in done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[0]["count"] == "4" and rows[0]["refused"] == "4"
    assert all(r["rank"] for r in rows)


def test_a_too_tight_similarity_splits_every_paraphrase(data_dir: Path) -> None:
    found = json.loads(gaps(data_dir, "--format", "json", "--similarity", "0.99").stdout)
    assert max(g["count"] for g in found) == 2  # only the one answer rated down by two users


def test_thumbs_down_export_as_eval_rows_keeps_earlier_rows(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "more.jsonl"
    target.write_text('{"id": "mine", "question": "kept?", "truth": "yes [it/a.md]"}\n', encoding="utf-8")
    done = gaps(data_dir, "--export-eval", str(target))
    assert "added 3 thumbs-down answers" in done.stderr
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["question"] for r in rows] == [
        "kept?",
        PETS[1],
        "VPN drops every 30 minutes",
        "vpn disconnects after half an hour",
    ]
    assert rows[2]["comments"] == ["Steps are for Windows 10"] and rows[2]["truth"] == ""
    assert rows[2]["sources_shown"] == ["it/vpn-windows.md", "hr/expense-policy.pdf#page=2"]

    again = gaps(data_dir, "--export-eval", str(target))
    assert "added 0 thumbs-down answers" in again.stderr
    questions = read_questions(target)
    assert questions[0].id == "mine" and len(questions) == 4
    assert questions[2].answerable and questions[2].expected_sources == []


def test_export_into_a_file_that_is_not_a_questions_file_changes_nothing(
    data_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "notes.jsonl"
    target.write_text("my notes, not JSON\n", encoding="utf-8")
    done = run_ragbot(
        "gaps", "--export-eval", str(target), cwd=data_dir, env={"RAGBOT_DATA_DIR": str(data_dir)}
    )
    assert done.returncode == 2 and f"{target}:1: not a question" in done.stderr
    assert target.read_text(encoding="utf-8") == "my notes, not JSON\n"
