"""`ragbot ask` end to end: the real CLI entry point, configured only by AZURE_* variables that point at
the loopback fake Azure OpenAI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure_fake import FakeAzure, Reply

from rag.contract import Answer
from ragbot.cli import main

Runner = Callable[..., Awaitable[tuple[int, str, str]]]

CITATIONS = [
    {
        "content": "Install the VPN client first.",
        "title": "VPN guide",
        "url": "https://kb.contoso.com/vpn",
        "chunk_id": "0",
    },
    {
        "content": "Error 809: port blocked.",
        "title": "VPN errors",
        "filepath": "it/vpn-errors.md",
        "chunk_id": "1",
    },
]
REPLY = {
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {
                "role": "assistant",
                "content": "Error 809 means a blocked port [doc2]; install the client [doc1].",
                "context": {"citations": CITATIONS, "intent": '["vpn error 809"]'},
            },
        }
    ],
    "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62},
}


@pytest.fixture
def ragbot(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Any], capsys: pytest.CaptureFixture[str]
) -> Runner:
    """Runs `ragbot ask ARGS` through the real CLI entry point (in a worker thread, since it starts its
    own event loop) with only AZURE_* variables pointing at the fake; returns (exit code, stdout, stderr)."""
    make_settings(
        {
            "AZURE_OPENAI_ENDPOINT": fake_azure.url,
            "AZURE_OPENAI_KEY": "cli-key",
            "AZURE_OPENAI_MODEL": "gpt-4o",
            "AZURE_SEARCH_SERVICE": "contoso",
            "AZURE_SEARCH_INDEX": "kb",
            "AZURE_SEARCH_KEY": "search-key",
            "RAGBOT_BACKEND": "on_your_data",
            "RAGBOT_RETRY_BUDGET": "0",
        }
    )

    async def run(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, ["ask", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


async def test_ask_prints_answer_and_numbered_sources(fake_azure: FakeAzure, ragbot: Runner) -> None:
    fake_azure.reply(Reply(body=REPLY))
    code, out, err = await ragbot("vpn error 809?")
    assert code == 0, err
    assert "Error 809 means a blocked port [1]; install the client [2]." in out  # numbered by first use
    assert "(searched for: vpn error 809)" in out
    sources = out.split("Sources:")[1]
    assert sources.index("[1] VPN errors - it/vpn-errors.md") < sources.index(
        "[2] VPN guide - https://kb.contoso.com/vpn"
    )
    sent = fake_azure.requests[0]
    assert sent.path == "/openai/deployments/gpt-4o/chat/completions"
    assert sent.body["data_sources"][0]["parameters"]["index_name"] == "kb"
    assert sent.body["messages"][-1] == {"role": "user", "content": "vpn error 809?"}


async def test_ask_json_prints_the_answer_model(fake_azure: FakeAzure, ragbot: Runner) -> None:
    fake_azure.reply(Reply(body=REPLY))
    code, out, err = await ragbot("--json", "vpn error 809?")
    assert code == 0, err
    answer = Answer.model_validate_json(out)
    assert answer.cited_numbers() == [1, 2]  # renumbered by first use; `retrieved` keeps the order
    assert answer.citations[0].filepath == "it/vpn-errors.md"
    assert [c["filepath"] for c in json.loads(out)["retrieved"]] == [None, "it/vpn-errors.md"]
    assert answer.intent == ["vpn error 809"]
    assert answer.usage is not None and answer.usage.total_tokens == 62


async def test_ask_stream(fake_azure: FakeAzure, ragbot: Runner) -> None:
    chunks = [
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "context": {"citations": CITATIONS, "intent": "vpn"}},
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {"content": "Blocked port [do"}}]},
        {"choices": [{"index": 0, "delta": {"content": "c2]."}, "finish_reason": "stop"}]},
    ]
    fake_azure.reply(Reply(events=chunks))
    code, out, err = await ragbot("--stream", "vpn?")
    assert code == 0, err
    assert out.startswith("Blocked port [1].")
    assert "[1] VPN errors - it/vpn-errors.md" in out
    assert fake_azure.requests[0].body["stream"] is True


async def test_ask_explains_a_model_without_on_your_data(fake_azure: FakeAzure, ragbot: Runner) -> None:
    refused = {"error": {"message": "Unrecognized request argument supplied: data_sources", "code": None}}
    fake_azure.reply(Reply(status=400, body=refused))
    code, out, err = await ragbot("vpn?")
    assert code == 1
    assert (
        "DataSourceError" in err
        and "does not support On Your Data" in err
        and "RAGBOT_BACKEND=grounded" in err
    )
    assert json.dumps(refused) not in out


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [
        (400, {"code": "OperationNotSupported", "message": "On Your Data has been retired."}, "retired"),
        (410, {"code": "Gone", "message": "This feature is no longer available."}, "retired"),
        (
            400,
            {"message": "Validation error at #/max_completion_tokens: Extra inputs are not permitted"},
            "does not support On Your Data",
        ),
        (400, {"code": "BadRequest", "message": "Data sources are not supported by this model."}, "does not"),
    ],
)
async def test_ask_names_a_retired_feature_or_a_model_without_data_sources(
    fake_azure: FakeAzure, ragbot: Runner, status: int, error: dict[str, str], says: str
) -> None:
    fake_azure.reply(Reply(status=status, body={"error": error}))
    code, _, err = await ragbot("vpn?")
    assert code == 1 and "DataSourceError" in err and says in err and "RAGBOT_BACKEND=grounded" in err


@pytest.mark.parametrize("as_json", [False, True])
async def test_ask_names_the_content_filter_category_and_severity(
    fake_azure: FakeAzure, ragbot: Runner, as_json: bool
) -> None:
    blocked = {
        "error": {
            "code": "content_filter",
            "message": "The prompt was filtered.",
            "innererror": {
                "content_filter_result": {
                    "violence": {"filtered": True, "severity": "medium"},
                    "jailbreak": {"filtered": True, "detected": True},
                    "hate": {"filtered": False, "severity": "safe"},
                }
            },
        }
    }
    fake_azure.reply(Reply(status=400, body=blocked))
    code, out, err = await ragbot(*(["--json"] if as_json else []), "vpn?")
    assert code == 1
    assert "ContentFiltered: content filtered (prompt): violence (medium), jailbreak (detected)" in err
    if as_json:
        error = json.loads(out)["error"]
        assert error["type"] == "ContentFiltered" and error["source"] == "prompt"
        assert error["categories"] == {"violence": "medium", "jailbreak": True}
    else:
        assert out == ""
