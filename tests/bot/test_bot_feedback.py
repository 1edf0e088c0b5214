"""Feedback: Teams' `message/submitAction` invoke over the real app, stored with the rated answer,
then listed and exported by `ragbot feedback` run as a real process."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.state import STATE_FILE
from bot.state.sqlite import SqliteStore
from ragbot.commands.feedback import load
from tests.bot.conftest import MakeBot
from tests.bot.fakes import activity
from tests.commandline import run_ragbot

ROOT = Path(__file__).resolve().parents[2]


def submit(service_url: str, reply_to: str | None, reaction: str, text: str, **extra: Any) -> dict[str, Any]:
    value = {
        "actionName": "feedback",
        "actionValue": {"reaction": reaction, "feedback": json.dumps({"feedbackText": text})},
    }
    body = activity(service_url, kind="invoke", name="message/submitAction", value=value, **extra)
    if reply_to:
        body["replyToId"] = reply_to
    return body


def ragbot_feedback(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_ragbot("feedback", *args, cwd=data_dir, env={"RAGBOT_DATA_DIR": str(data_dir)})


async def test_feedback_is_stored_with_the_rated_answer_and_exported(
    make_bot: MakeBot, tmp_path: Path
) -> None:
    bot = await make_bot()
    await bot.ask(activity(bot.service_url, "How do I use the VPN?"))
    final = bot.connector.messages("a:personal-1")[-1]
    rated_id = final.stream["streamId"] if final.stream else None
    assert rated_id

    response = await bot.post(submit(bot.service_url, rated_id, "dislike", "The second source is outdated."))
    assert response.status == 200
    assert await response.json() == {}
    other = submit(bot.service_url, rated_id, "like", "", user_id="29:bob", aad_object_id="aad-bob")
    assert (await bot.post(other)).status == 200
    await bot.client.close()

    listed = ragbot_feedback(tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "dislike" in listed.stdout and "The second source is outdated." in listed.stdout
    assert "2 ratings: 1 like, 1 dislike" in listed.stdout

    exported = ragbot_feedback(tmp_path, "--format", "json", "--reaction", "dislike")
    (record,) = json.loads(exported.stdout)
    assert record["question"] == "How do I use the VPN?"
    assert record["answer"].startswith("About How do I use the VPN?")
    assert record["intent"] == ["How do I use the VPN? how to"]
    assert [c["title"] for c in record["citations"]] == ["Portal guide", "Restart notes"]
    assert (record["reply_to_id"], record["user_id"], record["tenant_id"]) == (
        rated_id,
        "aad-user-1",
        "tenant-1",
    )

    out = tmp_path / "fb.csv"
    assert ragbot_feedback(tmp_path, "--format", "csv", "-o", str(out)).returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert sorted(r["reaction"] for r in rows) == ["dislike", "like"]
    assert all(r["question"] == "How do I use the VPN?" for r in rows)


async def test_rating_again_replaces_the_first_rating(make_bot: MakeBot, tmp_path: Path) -> None:
    bot = await make_bot(streaming=False)
    await bot.ask(activity(bot.service_url, "printer"))
    rated_id = bot.connector.messages("a:personal-1")[-1].returned_id
    for reaction in ("like", "dislike"):
        assert (await bot.post(submit(bot.service_url, rated_id, reaction, reaction))).status == 200
    await bot.client.close()
    (record,) = await load(SqliteStore(tmp_path / STATE_FILE))
    assert record.reaction == "dislike" and record.question == "printer"


@pytest.mark.parametrize(
    "value",
    [None, {"actionName": "other"}, {"actionName": "feedback", "actionValue": {"reaction": "meh"}}, "x"],
)
async def test_malformed_feedback_is_a_400(make_bot: MakeBot, value: Any) -> None:
    bot = await make_bot()
    body = activity(bot.service_url, kind="invoke", name="message/submitAction", value=value, replyToId="r1")
    assert (await bot.post(body)).status == 400


async def test_feedback_without_reply_to_id_is_a_400(make_bot: MakeBot) -> None:
    bot = await make_bot()
    assert (await bot.post(submit(bot.service_url, None, "like", "ok"))).status == 400


def test_no_feedback_yet(tmp_path: Path) -> None:
    result = ragbot_feedback(tmp_path)
    assert result.returncode == 0 and "no feedback yet" in result.stdout
    assert not (tmp_path / "state.sqlite").exists(), "listing does not create the store"
