"""`ragbot embed` end to end against the loopback fake: the deployment it goes to, batches in order,
and `dimensions` only where the api-version has it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure_fake import CliRunner, FakeAzure, Reply

EXAMPLE = json.loads(
    (Path(__file__).resolve().parents[1] / "conformance/actions/2024-10-21/embeddings.json").read_text()
)


def vectors(body: dict[str, Any], size: int = 3) -> Reply:
    """An embeddings answer: input i gets [i, i, ...], listed in reverse (the client must sort by index)."""
    data = [
        {"object": "embedding", "index": i, "embedding": [float(i)] * size} for i in range(len(body["input"]))
    ]
    return Reply(
        body={"object": "list", "data": data[::-1], "usage": {"prompt_tokens": 4, "total_tokens": 4}}
    )


def env(url: str, version: str = "2024-10-21") -> dict[str, str]:
    return {
        "AZURE_OPENAI_ENDPOINT": url,
        "AZURE_OPENAI_KEY": "embed-key",
        "AZURE_OPENAI_MODEL": "gpt-4o",
        "AZURE_OPENAI_EMBEDDING_NAME": "text-embedding-3-small",
        "AZURE_OPENAI_PREVIEW_API_VERSION": version,
        "RAGBOT_RETRY_BUDGET": "0",
    }


async def test_official_example_request_and_vector(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(env(fake_azure.url))
    fake_azure.reply(Reply(body=EXAMPLE["responses"]["200"]["body"]))
    code, out, err = await run_cli("embed", *EXAMPLE["parameters"]["body"]["input"])
    assert code == 0, err
    seen = fake_azure.requests[0]
    assert seen.body == EXAMPLE["parameters"]["body"]
    assert seen.path == "/openai/deployments/text-embedding-3-small/embeddings" and seen.headers["api-key"]
    result = json.loads(out)
    expected = EXAMPLE["responses"]["200"]["body"]["data"][0]["embedding"]
    assert result["dimensions"] == len(expected) == 1536
    assert result["data"] == [{"index": 0, "embedding": expected, "text": "this is a test"}]
    assert result["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


async def test_texts_to_vectors_in_batches_and_order(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner, tmp_path: Path
) -> None:
    make_settings(env(fake_azure.url))
    fake_azure.respond = vectors
    (tmp_path / "texts.txt").write_text("".join(f"question {i}\n\n" for i in range(18)))
    code, out, err = await run_cli("embed", "first", "--file", str(tmp_path / "texts.txt"))
    assert code == 0, err
    result = json.loads(out)
    assert [len(seen.body["input"]) for seen in fake_azure.requests] == [16, 3]
    assert fake_azure.requests[0].path == "/openai/deployments/text-embedding-3-small/embeddings"
    assert result["model"] == "text-embedding-3-small" and result["dimensions"] == 3
    assert [row["index"] for row in result["data"]] == list(range(19))
    assert result["data"][0]["text"] == "first" and result["data"][18]["text"] == "question 17"
    assert result["data"][17]["embedding"] == [1.0, 1.0, 1.0]  # second batch, its input 1
    assert result["usage"] == {"prompt_tokens": 8, "total_tokens": 8}


async def test_dimensions_sent_where_the_api_version_has_them(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(env(fake_azure.url))
    fake_azure.respond = lambda body: vectors(body, size=body["dimensions"])
    code, out, err = await run_cli("embed", "--dimensions", "256", "hello")
    assert code == 0, err
    assert fake_azure.requests[0].body == {"input": ["hello"], "dimensions": 256}
    assert json.loads(out)["dimensions"] == 256


async def test_dimensions_refused_by_an_older_api_version(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(env(fake_azure.url, "2024-02-15-preview"))
    code, _, err = await run_cli("embed", "--dimensions", "256", "hello")
    assert code == 2 and "2024-10-21" in err
    assert not fake_azure.requests


async def test_openai_endpoint_needs_a_model_name(
    fake_azure: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(
        {"RAGBOT_LLM_BASE_URL": fake_azure.url, "RAGBOT_LLM_API_KEY": "sk-x", "RAGBOT_LLM_MODEL": "chat"}
    )
    code, _, err = await run_cli("embed", "hello")
    assert code == 2 and "--model" in err
    fake_azure.respond = vectors
    code, _, err = await run_cli("embed", "--model", "text-embedding-3-small", "hello")
    assert code == 0, err
    seen = fake_azure.requests[0]
    assert seen.path == "/embeddings" and seen.body["model"] == "text-embedding-3-small"
