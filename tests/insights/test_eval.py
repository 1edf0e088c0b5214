"""`ragbot eval` as a user runs it: the sample questions (a subset) and the azure-search-openai-demo
ground-truth format through the local backend, a chat model judging on a loopback fake, the results
folder, `--compare`, and bad input refused before any work."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rag.azure.client import AzureOpenAIClient
from rag.contract import Answer, Asker, Citation, Turn
from rag.errors import UpstreamUnavailable
from ragbot.evaluation.judge import Judge
from ragbot.evaluation.questions import EvalQuestion
from ragbot.evaluation.run import ResultRow, Summary, compare, evaluate, metrics
from tests.azure.azure_fake import FakeAzure, Reply
from tests.commandline import OUTER_SETTINGS, run_ragbot
from tests.loopback import serve

ROOT = Path(__file__).resolve().parents[2]
HELPDESK = ROOT / "samples" / "helpdesk"
ARTICLES = ("it/vpn-windows.md", "it/vpn-macos.md", "it/vpn-error-codes.md", "hr/expense-policy.pdf")
SUBSET = ("q001", "q002", "q003", "q005", "q076", "q078", "q126", "q128")
"""Answerable questions on those articles (one a follow-up) and two nobody could answer from them."""
GROUND_TRUTH = [
    {
        "question": "What is the UK overnight per diem?",
        "truth": "A flat £45 a night covers lunch, dinner and incidentals [expense-policy.pdf#page=2].",
    },
    {
        "question": "How do I connect to the VPN on Windows?",
        "truth": "Click the network icon and select Contoso-VPN [vpn-windows.md].",
    },
    {
        "question": "Can I expense a Contoso stock purchase?",
        "truth": "Shares are personal spending [expense-policy.pdf#page=3].",
    },
]
OFFICIAL_CHAT = ROOT / "tests/conformance/aoai/2024-10-21/chat_completions.json"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local index of four sample articles, the sample questions about them, and a demo ground truth."""
    folder = tmp_path_factory.mktemp("eval")
    for name in ARTICLES:
        (folder / "kb" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(HELPDESK / name, folder / "kb" / name)
    built = ragbot(folder, "index", "kb", "--target", "local")
    assert built.returncode == 0, built.stderr
    lines = (HELPDESK / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    chosen = [line for line in lines if json.loads(line)["id"] in SUBSET]
    (folder / "questions.jsonl").write_text("\n".join(chosen) + "\n", encoding="utf-8")
    rows = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in GROUND_TRUTH)
    (folder / "ground_truth.jsonl").write_text(rows, encoding="utf-8")
    return folder


def ragbot(folder: Path, *args: str, **env: str) -> Any:
    return run_ragbot(*args, cwd=folder, env={"RAGBOT_DATA_DIR": str(folder / "data"), **env})


def read_run(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    return summary, rows


def test_sample_questions_on_the_local_backend(workspace: Path) -> None:
    done = ragbot(workspace, "eval", "questions.jsonl", "--out", "runs/local")
    assert done.returncode == 0, done.stderr
    assert "8 questions from questions.jsonl, local backend, judge: none" in done.stdout
    assert "citations_matched.rate" in done.stdout and "refusal.accuracy" in done.stdout

    summary, rows = read_run(workspace / "runs" / "local")
    assert [r["id"] for r in rows] == list(SUBSET)
    by_id = {r["id"]: r for r in rows}
    assert by_id["q126"]["refused"] and by_id["q126"]["refusal_correct"]
    assert not by_id["q002"]["refused"] and "it/vpn-windows.md" in by_id["q002"]["cited_sources"]
    assert "[it/vpn-windows.md]" in by_id["q002"]["answer"]  # markers written as the truth writes sources
    assert by_id["q003"]["cited_sources"][0] == "it/vpn-macos.md"  # the follow-up saw its history
    assert by_id["q076"]["cited_sources"][0].startswith("hr/expense-policy.pdf#page=")
    assert all(r["latency_ms"] > 0 and r["groundedness"] is None for r in rows)
    figures = summary["metrics"]
    assert figures["questions"] == 8 and figures["errors"] == 0
    assert figures["refusal.unanswerable_refused"] == 1.0
    assert figures["citations_matched.rate"] >= 0.8
    assert figures["groundedness.pass_rate"] is None  # no chat model: not judged


def chat(content: str) -> Reply:
    body = json.loads(OFFICIAL_CHAT.read_text(encoding="utf-8"))["responses"]["200"]["body"]
    body["choices"][0]["message"]["content"] = content
    return Reply(body=body)


def judge_scores(body: dict[str, Any]) -> Reply:
    """Groundedness 5 for all; relevance 2 for the VPN answer, 4 for the rest, and no score for the
    per diem answer (a judge that rambles)."""
    user = body["messages"][1]
    if "SOURCES" in user["content"]:
        return chat("5")
    if "per diem" in user["content"]:
        return chat("This answer looks fine to me.")
    return chat("Score: 2" if "VPN" in user["content"] else "4")


async def test_demo_ground_truth_judged_by_a_chat_model(workspace: Path) -> None:
    fake = FakeAzure()
    fake.respond = judge_scores
    async with serve(fake.handle, method="POST") as url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(OUTER_SETTINGS)},
            "RAGBOT_DATA_DIR": str(workspace / "data"),
            "RAGBOT_BACKEND": "local",
            "RAGBOT_LLM_BASE_URL": f"{url}/v1",
            "RAGBOT_LLM_MODEL": "judge-model",
            "RAGBOT_LLM_API_KEY": "judge-key",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "ragbot", "eval", "ground_truth.jsonl", "--out", "runs/judged", "--concurrency", "2"),
            cwd=workspace,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert "judge: judge-model" in out.decode()

    summary, rows = read_run(workspace / "runs" / "judged")
    per_diem, vpn, stock = rows
    assert per_diem["expected_sources"] == ["expense-policy.pdf#page=2"]
    assert per_diem["citations_matched"] == 1.0  # hr/expense-policy.pdf cited at page 2
    assert vpn["expected_sources"] == ["vpn-windows.md"] and vpn["citations_matched"] == 1.0
    assert stock["refused"] and stock["groundedness"] is None  # a refusal is not judged
    assert (per_diem["groundedness"], per_diem["relevance"]) == (5, None)
    assert "without a 1-5 score" in per_diem["judge_problem"]
    assert (vpn["groundedness"], vpn["relevance"]) == (5, 2)
    figures = summary["metrics"]
    assert (figures["groundedness.pass_rate"], figures["groundedness.mean_rating"]) == (1.0, 5.0)
    assert (figures["relevance.pass_rate"], figures["relevance.mean_rating"]) == (0.0, 2.0)
    assert figures["refusal.accuracy"] == pytest.approx(2 / 3, abs=1e-3)  # the truth expected an answer

    assert len(fake.requests) == 4  # two answers, two metrics each
    sent = fake.requests[0]
    assert sent.path == "/v1/chat/completions" and sent.body["model"] == "judge-model"
    assert sent.headers["Authorization"] == "Bearer judge-key"
    grounded = next(r.body for r in fake.requests if "SOURCES" in r.body["messages"][1]["content"])
    assert "Contoso-VPN" in grounded["messages"][1]["content"] or "£45" in grounded["messages"][1]["content"]


def test_compare_prints_the_changes(workspace: Path) -> None:
    first = workspace / "runs" / "local"
    if not (first / "summary.json").exists():
        assert ragbot(workspace, "eval", "questions.jsonl", "--out", str(first)).returncode == 0
    done = ragbot(
        workspace, "eval", "questions.jsonl", "--limit", "3", "--out", "runs/few", "--compare", str(first)
    )
    assert done.returncode == 0, done.stderr
    assert "compared with questions.jsonl on the local backend" in done.stdout
    assert "0 questions changed" in done.stdout
    assert "3 questions only in the other" not in done.stdout
    assert "0 questions only in this run, 5 only in the other" in done.stdout


def row(ident: str, **fields: Any) -> ResultRow:
    return ResultRow(
        **{"id": ident, "question": f"q {ident}", "latency_ms": 100.0, "refusal_correct": True, **fields}
    )


def summary(rows: list[ResultRow]) -> Summary:
    return Summary(
        file="q.jsonl",
        backend="local",
        questions=len(rows),
        concurrency=1,
        started_at="2026-12-01T00:00:00+00:00",
        seconds=1.0,
        metrics=metrics(rows),
    )


def test_compare_names_better_worse_and_the_questions_that_changed() -> None:
    before = [
        row("a", citations_matched=1.0, any_citation=True),
        row("b", refused=True, refusal_correct=False),
    ]
    after = [
        row("a", citations_matched=0.5, any_citation=True),
        row("b", citations_matched=1.0, any_citation=True),
    ]
    after[1] = after[1].model_copy(update={"latency_ms": 300.0})
    text = compare(summary(after), after, summary(before), before)
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert lines["citations_matched.rate"].split()[1:] == ["0.750", "1.000", "-0.250", "worse"]
    assert lines["refusal.accuracy"].split()[1:] == ["1.000", "0.500", "+0.500", "better"]
    assert lines["latency.mean_ms"].split()[1:] == ["200.0", "100.0", "+100.0", "worse"]
    assert "2 questions changed:" in text
    assert "a: citations_matched 1.00 -> 0.50" in text
    assert "b: refused yes -> no; citations_matched - -> 1.00" in text


def test_bad_input_is_refused_before_any_work(workspace: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok"}\n{"truth": "no question here"}\n', encoding="utf-8")
    done = ragbot(workspace, "eval", str(bad), "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and f"{bad}:2: not a question (question: Field required)" in done.stderr
    assert not (tmp_path / "x").exists()

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "summary.json").write_text("{}", encoding="utf-8")
    done = ragbot(workspace, "eval", "questions.jsonl", "--out", str(taken))
    assert done.returncode == 2 and "already holds results" in done.stderr
    assert (taken / "summary.json").read_text(encoding="utf-8") == "{}"


def test_a_missing_index_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "q.jsonl").write_text('{"question": "vpn?"}\n', encoding="utf-8")
    done = run_ragbot("eval", "q.jsonl", cwd=tmp_path, env={"RAGBOT_DATA_DIR": str(tmp_path / "nowhere")})
    assert done.returncode == 2
    assert "the local backend is not ready" in done.stderr and "RAGBOT_DATA_DIR" in done.stderr
    assert not (tmp_path / "eval-results").exists()


class CountingAnswerer:
    """Answers after a pause, counting how many answers are in flight; fails on "broken"."""

    name = "counting"

    def __init__(self) -> None:
        self.running = self.most = 0

    async def answer(self, history: Sequence[Turn], question: str, user: Asker | None = None) -> Answer:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.01)
            if question == "broken":
                raise UpstreamUnavailable("the model is down")
            cited = Citation(content="text", filepath=f"kb/{question}.md")
            return Answer(content=f"About {question} [doc1].", citations=[cited])
        finally:
            self.running -= 1


class CountingBar:
    def __init__(self) -> None:
        self.done = 0

    def grow(self, n: int) -> None: ...

    def update(self, n: int) -> None:
        self.done += n

    def close(self) -> None: ...


async def test_at_most_concurrency_answers_run_at_once_and_a_failed_answer_is_one_row() -> None:
    answerer = CountingAnswerer()
    bar = CountingBar()
    names = [f"topic{n}" for n in range(11)] + ["broken"]
    questions = [EvalQuestion(id=name, question=name, relevant=[f"{name}.md"]) for name in names]
    rows = await evaluate(answerer, questions, concurrency=3, progress=bar)
    assert answerer.most == 3 and bar.done == 12
    assert [r.id for r in rows] == names  # in the file's order, whichever finished first
    assert rows[-1].error == "UpstreamUnavailable: the model is down" and rows[-1].latency_ms is None
    figures = metrics(rows)
    assert figures["errors"] == 1 and figures["citations_matched.rate"] == 1.0
    assert figures["questions"] == 12


async def test_the_judge_on_azure_openai_scores_and_a_failed_call_is_no_score() -> None:
    fake = FakeAzure()
    async with serve(fake.handle, method="POST") as url:
        client = AzureOpenAIClient(
            base_url=url,
            api_version="2024-10-21",
            api_key=SecretStr("k"),
            default_deployment="gpt-4o",
            retry_budget=0,
        )
        judge = Judge(client)
        fake.reply(
            chat("4"), Reply(status=400, body={"error": {"code": "BadRequest", "message": "max_tokens"}})
        )
        sources = [Citation(content="Click Contoso-VPN.", filepath="it/vpn-windows.md")]
        scored = await judge.score("groundedness", "vpn?", "Click Contoso-VPN [it/vpn-windows.md].", sources)
        failed = await judge.score("relevance", "vpn?", "Click Contoso-VPN.", sources)
        await judge.aclose()
    assert scored == (4, None)
    assert failed.score is None and failed.problem and failed.problem.startswith("relevance: ")
    first = fake.requests[0]
    assert first.path == "/openai/deployments/gpt-4o/chat/completions" and first.headers["api-key"] == "k"
    assert "Click Contoso-VPN." in first.body["messages"][1]["content"]


def test_compare_finds_questions_without_ids_by_their_text() -> None:
    before = [row("line-1", question="vpn?", citations_matched=1.0), row("line-2", question="leave?")]
    after = [row("line-1", question="new one"), row("line-2", question="vpn?", citations_matched=0.0)]
    after.append(row("line-3", question="leave?"))
    text = compare(summary(after), after, summary(before), before)
    assert "line-2: citations_matched 1.00 -> 0.00" in text and "1 questions changed" in text
    assert "1 questions only in this run, 0 only in the other" in text
