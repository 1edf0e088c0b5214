"""`ragbot ask` words answers as the bot does: same refusal, one number per document, cited-only JSON,
a stream printed as it arrives, and a missing or unreadable index that names the setting to change
(exit 2, a set-up problem, as `ragbot serve` exits)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bot.pacing import paced
from bot.render import render_reply
from bot.render.failures import NOT_IN_KNOWLEDGE_BASE
from rag.contract import REFUSAL, Answer, AnswerDelta, Asker, Citation, Turn
from ragbot.commands.ask import _print_stream, answer_json, plain_text
from tests.commandline import run_ragbot

VPN = Citation(
    content="Open the VPN app.", title="VPN on Windows", url="https://kb.contoso.com/vpn", chunk_id="0"
)
VPN_AGAIN = Citation(
    content="Pick the gateway.", title="VPN on Windows", url="https://kb.contoso.com/vpn", chunk_id="1"
)
PASSWORD = Citation(content="Use the portal.", title="Passwords", filepath="it/password.md")
UNCITED = Citation(content="Printers.", title="Printers", filepath="it/printers.md")


def test_refusal_is_the_bots_sentence() -> None:
    refused = Answer(content=REFUSAL)
    assert plain_text(refused) == NOT_IN_KNOWLEDGE_BASE == render_reply(refused, "webchat", None)["text"]


def test_sources_are_one_number_per_document_without_gaps() -> None:
    answer = Answer(
        content="Open the app [doc1]. Pick the gateway [doc3]. Or reset [doc2].",
        citations=[VPN, PASSWORD, VPN_AGAIN, UNCITED],
        intent=["vpn"],
    )
    text = plain_text(answer)
    assert text.startswith("Open the app [1]. Pick the gateway [1]. Or reset [2].")
    assert "[3]" not in text and "Printers" not in text
    assert "  [1] VPN on Windows - https://kb.contoso.com/vpn\n  [2] Passwords - it/password.md" in text

    body = answer_json(answer)
    assert body["content"] == "Open the app [doc1]. Pick the gateway [doc1]. Or reset [doc2]."
    assert [c["title"] for c in body["citations"]] == ["VPN on Windows", "Passwords"]
    assert [c["title"] for c in body["retrieved"]] == [
        "VPN on Windows",
        "Passwords",
        "VPN on Windows",
        "Printers",
    ]
    assert body["refused"] is False


class GatedAnswerer:
    """Streams two sentences; the second waits until the test saw the first printed."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def answer(self, history: Sequence[Turn], question: str, user: Asker | None = None) -> Answer:
        raise NotImplementedError

    async def stream(
        self, history: Sequence[Turn], question: str, user: Asker | None = None
    ) -> AsyncIterator[AnswerDelta]:
        yield AnswerDelta(citations=[VPN], intent=["vpn"])
        yield AnswerDelta(content="Open the VPN app [doc1].")
        await self.gate.wait()
        yield AnswerDelta(content=" Then sign in.", finish_reason="stop")

    async def ready(self) -> str | None:
        return None

    async def aclose(self) -> None:
        return None


async def test_stream_prints_each_piece_as_it_arrives(capsys: pytest.CaptureFixture[str]) -> None:
    answerer = GatedAnswerer()
    printing = asyncio.create_task(_print_stream(answerer, [], "vpn?"))
    printed = ""
    for _ in range(500):
        await asyncio.sleep(0.01)
        printed += capsys.readouterr().out
        if printed:
            break
    assert printed == "Open the VPN app [1].", "nothing was printed before the stream ended"
    answerer.gate.set()
    await printing
    rest = capsys.readouterr().out
    assert rest.startswith(" Then sign in.") and "Sources:\n  [1] VPN on Windows" in rest


async def test_pacing_spreads_a_burst_within_a_budget() -> None:
    waits: list[float] = []
    now = [0.0]

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    async def burst() -> AsyncIterator[AnswerDelta]:
        for _ in range(6):
            yield AnswerDelta(content="x" * 300)

    out = [
        d async for d in paced(burst(), chars_per_second=600, budget=1.2, clock=lambda: now[0], sleep=sleep)
    ]
    assert len(out) == 6
    assert waits == pytest.approx([0.5, 0.5, 0.2])  # 300 chars at 600/s, until the budget is spent


def test_without_an_index_it_names_the_setting_and_the_command(tmp_path: Path) -> None:
    result = run_ragbot("ask", "How do I connect to the VPN?", cwd=tmp_path)
    assert result.returncode == 2
    assert f"looked for {tmp_path / 'data' / 'index.sqlite'}" in result.stderr
    assert "RAGBOT_DATA_DIR" in result.stderr and "ragbot index FOLDER" in result.stderr


def test_json_without_an_index_prints_one_error_object_and_exits_2(tmp_path: Path) -> None:
    """A JSON reader gets an object, as for a failed answer, not an empty standard output."""
    result = run_ragbot("ask", "--json", "How do I connect to the VPN?", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stdout.splitlines()
    error = json.loads(line)["error"]
    assert error["type"] == "NotReady" and "does not exist" in error["message"]
    assert "not ready" in result.stderr


def test_an_index_that_is_a_folder_is_called_a_folder(tmp_path: Path) -> None:
    (tmp_path / "data" / "index.sqlite").mkdir(parents=True)
    result = run_ragbot("ask", "How do I connect to the VPN?", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "data/index.sqlite is a folder, not an index file" in result.stderr
    assert "does not exist" not in result.stderr


def test_an_unreadable_index_is_a_set_up_problem_exit_2_like_serve(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "index.sqlite").write_bytes(b"not a database " * 100)
    result = run_ragbot("ask", "How do I connect to the VPN?", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "is not an index built by `ragbot index`" in result.stderr
    assert "Traceback" not in result.stderr
