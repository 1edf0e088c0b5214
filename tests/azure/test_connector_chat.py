"""`ragbot chat` end to end: the real CLI against the loopback fake, with the official chat example."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from azure_fake import CliRunner, FakeAzure, Reply

from tests.commandline import OUTER_SETTINGS
from tests.loopback import serve

EXAMPLE = json.loads(
    (Path(__file__).resolve().parents[1] / "conformance/aoai/2024-10-21/chat_completions.json").read_text()
)
PIRATE = EXAMPLE["responses"]["200"]["body"]


def azure_env(url: str, **extra: str) -> dict[str, str]:
    return {
        "AZURE_OPENAI_ENDPOINT": url,
        "AZURE_OPENAI_KEY": "chat-secret-key",
        "AZURE_OPENAI_MODEL": "gpt-4o",
        "RAGBOT_RETRY_BUDGET": "0",
        **extra,
    }


def answer(*texts: str, reason: str = "stop") -> dict[str, Any]:
    return {
        "choices": [
            {"index": i, "finish_reason": reason, "message": {"role": "assistant", "content": text}}
            for i, text in enumerate(texts)
        ]
    }


async def test_official_example_request_and_answer(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(azure_env(fake_azure.url))
    fake_azure.reply(Reply(body=PIRATE))
    system, user = (m["content"] for m in EXAMPLE["parameters"]["body"]["messages"])
    code, out, err = await run_cli("chat", "--system", system, user)
    assert code == 0, err
    assert out.startswith("Ahoy matey! So ye be wantin' to care for a fine squawkin' parrot")
    seen = fake_azure.requests[0]
    assert seen.path == "/openai/deployments/gpt-4o/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"} and seen.headers["api-key"] == "chat-secret-key"
    assert seen.body["messages"] == EXAMPLE["parameters"]["body"]["messages"]


async def test_every_parameter_sent_and_every_choice_printed(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(azure_env(fake_azure.url))
    fake_azure.reply(Reply(body=answer("Byte the Owl", "Patch the Penguin", "Ticket the Tortoise")))
    code, out, err = await run_cli(
        "chat", "--n", "3", "--temperature", "0.7", "--top-p", "0.9", "--max-tokens", "50",
        "--stop", "END", "--stop", "STOP", "--presence-penalty", "0.5", "--frequency-penalty", "-0.5",
        "--seed", "42", "Name a help-desk mascot",
    )  # fmt: skip
    assert code == 0, err
    body = fake_azure.requests[0].body
    assert body["n"] == 3 and body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert body["max_tokens"] == 50 and body["stop"] == ["END", "STOP"] and body["seed"] == 42
    assert body["presence_penalty"] == 0.5 and body["frequency_penalty"] == -0.5
    for number, name in enumerate(("Byte the Owl", "Patch the Penguin", "Ticket the Tortoise"), start=1):
        assert f"--- choice {number} ---\n{name}" in out


async def test_out_of_range_parameter_is_refused_before_any_call(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(azure_env(fake_azure.url))
    code, _, err = await run_cli("chat", "--n", "11", "hi")
    assert code == 2 and "n:" in err and "10" in err
    assert not fake_azure.requests


async def test_several_prompts_run_at_once_and_print_in_order(
    make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    """The first prompt is held until all three arrived: sequential sending would never release it."""
    arrived: list[str] = []
    all_in = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        prompt = (await request.json())["messages"][-1]["content"]
        arrived.append(prompt)
        if len(arrived) == 3:
            all_in.set()
        if prompt == "first":
            try:
                await asyncio.wait_for(all_in.wait(), 10)
            except TimeoutError:
                return web.json_response({"error": {"message": "sent one at a time"}}, status=400)
        return web.json_response(answer(f"answer to {prompt}"))

    async with serve(handler) as url:
        make_settings(azure_env(url))
        code, out, err = await run_cli("chat", "first", "second", "third")
    assert code == 0, err
    assert out.index("[1] first\nanswer to first") < out.index("[2] second\nanswer to second")
    assert out.index("[2] second") < out.index("[3] third\nanswer to third")


async def test_answers_print_as_they_come_in_order(tmp_path: Path) -> None:
    """The last prompt is held until the first answer was printed: a command that printed only at the
    end would never release it. A real process, its standard output read as it runs."""
    printed = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        prompt = (await request.json())["messages"][-1]["content"]
        if prompt == "last":
            try:
                await asyncio.wait_for(printed.wait(), 20)
            except TimeoutError:
                return web.json_response({"error": {"message": "nothing printed before the end"}}, status=400)
        return web.json_response(answer(f"answer to {prompt}"))

    async with serve(handler) as url:
        base = {k: v for k, v in os.environ.items() if not k.startswith((*OUTER_SETTINGS, "OPENAI_"))}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ragbot", "chat", "first", "last",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
            env={**base, **azure_env(url)},
        )  # fmt: skip
        assert process.stdout is not None
        lines = []
        async with asyncio.timeout(60):
            while line := (await process.stdout.readline()).decode():
                lines.append(line)
                if line.strip() == "answer to first":
                    printed.set()
            code = await process.wait()
    assert code == 0 and "".join(lines).endswith("[2] last\nanswer to last\n")


async def test_throttled_then_answered_after_the_wait_asked_for(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(azure_env(fake_azure.url, RAGBOT_RETRY_BUDGET="10"))
    fake_azure.reply(
        Reply(status=429, body={"error": {"message": "slow down"}}, headers={"retry-after-ms": "400"}),
        Reply(body=answer("finally")),
    )
    code, out, err = await run_cli("chat", "hi")
    assert code == 0, err
    assert out.strip() == "finally"
    first, second = fake_azure.requests
    assert second.at - first.at >= 0.4


async def test_rate_limit_spaces_out_calls(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(azure_env(fake_azure.url, RAGBOT_RATE_LIMIT_CALLS="2", RAGBOT_RATE_LIMIT_PERIOD="2"))
    fake_azure.respond = lambda body: Reply(body=answer("ok"))
    code, _, err = await run_cli("chat", "a", "b", "c")
    assert code == 0, err
    starts = sorted(seen.at for seen in fake_azure.requests)
    # the third waits 2 s for the first's slot to free; the first's arrival lags its slot by the connection
    # set-up, which a loaded machine stretches (0.5 s seen), so the bound leaves a second for it
    assert len(starts) == 3 and starts[2] - starts[0] >= 1.0


async def test_file_of_conversations_json_lines_and_one_failure(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner, tmp_path: Path
) -> None:
    make_settings(azure_env(fake_azure.url))
    conversations = [
        [{"role": "user", "content": "one"}],
        {"messages": [{"role": "user", "content": "two"}], "temperature": 1.5, "user": "helpdesk"},
    ]
    (tmp_path / "chats.json").write_text(json.dumps(conversations))
    filtered = {"error": {"code": "content_filter", "message": "filtered", "status": 400}}
    fake_azure.respond = lambda body: (
        Reply(status=400, body=filtered)
        if body["messages"][-1]["content"] == "two"
        else Reply(body=answer("first answer"))
    )
    code, out, _ = await run_cli("chat", "--file", str(tmp_path / "chats.json"), "--json")
    assert code == 1
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["prompt"] == 1 and first["response"]["choices"][0]["message"]["content"] == "first answer"
    assert second["prompt"] == 2 and second["error"]["type"] == "ContentFiltered"
    sent = {seen.body["messages"][-1]["content"]: seen.body for seen in fake_azure.requests}
    assert sent["two"]["temperature"] == 1.5 and sent["two"]["user"] == "helpdesk"
    assert sent["one"]["temperature"] == 0.0  # AZURE_OPENAI_TEMPERATURE's default


@pytest.mark.parametrize("variable", ["RAGBOT_LLM_ORGANIZATION", "OPENAI_ORGANIZATION"])
async def test_openai_key_with_organization(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner, variable: str
) -> None:
    make_settings(
        {
            "RAGBOT_LLM_BASE_URL": fake_azure.url + "/v1",
            "RAGBOT_LLM_API_KEY": "sk-test-key",
            "RAGBOT_LLM_MODEL": "gpt-4o-mini",
            variable: "org-contoso",
        }
    )
    fake_azure.reply(Reply(body=answer("hello")))
    code, _, err = await run_cli("chat", "hi")
    assert code == 0, err
    seen = fake_azure.requests[0]
    assert seen.path == "/v1/chat/completions" and seen.body["model"] == "gpt-4o-mini"
    assert seen.headers["Authorization"] == "Bearer sk-test-key"
    assert seen.headers["OpenAI-Organization"] == "org-contoso"
    assert "api-key" not in seen.headers


async def test_no_organization_header_unless_configured(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings({"RAGBOT_LLM_BASE_URL": fake_azure.url, "RAGBOT_LLM_MODEL": "llama3"})
    fake_azure.reply(Reply(body=answer("hello")))
    code, _, err = await run_cli("chat", "hi")
    assert code == 0, err
    assert "OpenAI-Organization" not in fake_azure.requests[0].headers
