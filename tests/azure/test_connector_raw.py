"""`ragbot raw` end to end against the loopback fake: every request and response option, the retry
options, and --debug with its secrets masked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure_fake import CliRunner, FakeAzure, Reply

from rag.azure.connector import connector_client
from rag.settings import Settings
from ragbot.commands.raw import masked_headers
from tests.commandline import run_ragbot

KEY = "raw-secret-key-0123456789"
SEARCH_KEY = "search-secret-value-987"


def env(url: str, **extra: str) -> dict[str, str]:
    return {
        "AZURE_OPENAI_ENDPOINT": url,
        "AZURE_OPENAI_KEY": KEY,
        "AZURE_OPENAI_MODEL": "gpt-4o",
        "AZURE_SEARCH_KEY": SEARCH_KEY,
        "RAGBOT_RETRY_BUDGET": "10",
        **extra,
    }


async def test_get_with_query_and_headers_prints_json(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(env(fake_endpoint.url))
    fake_endpoint.reply(Reply(body={"data": [{"id": "gpt-4o"}], "object": "list"}))
    code, out, err = await run_cli(
        "raw", "get", "/openai/models", "--query", "top=5", "--header", "x-ms-client-request-id: abc-1"
    )
    assert code == 0, err
    assert json.loads(out) == {"data": [{"id": "gpt-4o"}], "object": "list"}
    seen = fake_endpoint.requests[0]
    assert seen.method == "GET" and seen.path == "/openai/models"
    assert seen.query == {"top": "5", "api-version": "2024-10-21"}
    assert seen.headers["x-ms-client-request-id"] == "abc-1" and seen.headers["api-key"] == KEY


async def test_post_json_to_the_deployment(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner, tmp_path: Path
) -> None:
    make_settings(env(fake_endpoint.url))
    fake_endpoint.reply(Reply(body={"ok": True}), Reply(body={"ok": True}))
    body = {"messages": [{"role": "user", "content": "Hi"}]}
    (tmp_path / "body.json").write_text(json.dumps(body))
    path = "/openai/deployments/{deployment}/chat/completions"
    code, _, err = await run_cli(
        "raw", "POST", path, "--json", json.dumps(body), "--query", "api-version=2025-04-01-preview"
    )
    assert code == 0, err
    code, _, err = await run_cli("raw", "POST", path, "--json", "@body.json")
    assert code == 0, err
    first, second = fake_endpoint.requests
    assert first.path == second.path == "/openai/deployments/gpt-4o/chat/completions"
    assert first.query == {"api-version": "2025-04-01-preview"}  # given, not added
    assert first.body == second.body == body
    assert first.headers["Content-Type"] == "application/json"


async def test_form_and_multipart_file(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner, tmp_path: Path
) -> None:
    make_settings(env(fake_endpoint.url))
    fake_endpoint.reply(Reply(body={"id": "a"}), Reply(body={"id": "file-1"}))
    (tmp_path / "train.jsonl").write_bytes(b'{"prompt": "p", "completion": "c"}\n')
    code, _, err = await run_cli("raw", "POST", "/openai/x", "--form", "purpose=fine-tune", "--form", "n=a b")
    assert code == 0, err
    code, _, err = await run_cli(
        "raw", "POST", "/openai/files", "--form", "purpose=fine-tune", "--file", "file=train.jsonl"
    )
    assert code == 0, err
    form, multipart = fake_endpoint.requests
    assert form.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert form.raw == b"purpose=fine-tune&n=a+b"
    assert multipart.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="purpose"' in multipart.raw and b"fine-tune" in multipart.raw
    assert (
        b'filename="train.jsonl"' in multipart.raw and b'{"prompt": "p", "completion": "c"}' in multipart.raw
    )


async def test_text_and_binary_responses(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner, tmp_path: Path
) -> None:
    make_settings(env(fake_endpoint.url))
    audio = bytes(range(256)) * 4
    fake_endpoint.reply(
        Reply(body=b"plain words", content_type="text/plain"),
        Reply(body=audio, content_type="audio/mpeg"),
    )
    code, out, err = await run_cli("raw", "GET", "/openai/text", "--response-type", "text")
    assert code == 0, err
    assert out == "plain words\n"
    code, out, err = await run_cli(
        "raw", "POST", "/openai/deployments/tts/audio/speech", "--json", "{}", "--response-type", "binary",
        "--out", str(tmp_path / "speech.mp3"),
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "speech.mp3").read_bytes() == audio and "wrote 1,024 bytes" in err


async def test_binary_needs_out_and_cap_refuses_large_bodies(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(env(fake_endpoint.url))
    code, _, err = await run_cli("raw", "GET", "/openai/x", "--response-type", "binary")
    assert code == 2 and "--out" in err and not fake_endpoint.requests
    fake_endpoint.reply(Reply(body=b"x" * 5000, content_type="text/plain"))
    code, _, err = await run_cli("raw", "GET", "/openai/x", "--response-type", "text", "--max-bytes", "1000")
    assert code == 1 and "1,000-byte cap" in err


async def test_debug_prints_the_request_with_secrets_masked(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(env(fake_endpoint.url))
    fake_endpoint.reply(Reply(body={"ok": True}, headers={"apim-request-id": "req-7"}))
    body = {"data_sources": [{"parameters": {"authentication": {"type": "api_key", "key": SEARCH_KEY}}}]}
    code, _, err = await run_cli(
        "raw", "POST", "/openai/deployments/{deployment}/chat/completions", "--json", json.dumps(body),
        "--header", "Authorization: Bearer user-token-abcdefgh", "--debug",
    )  # fmt: skip
    assert code == 0, err
    assert (
        f"> POST {fake_endpoint.url}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21" in err
    )
    assert "> api-key: ***" in err and "> Authorization: Bearer ***" in err
    assert '"type": "api_key"' in err  # the body is shown ...
    assert KEY not in err and SEARCH_KEY not in err and "user-token" not in err  # ... without its secrets
    assert "< 200" in err and "< apim-request-id: req-7" in err
    assert fake_endpoint.requests[0].headers["api-key"] == KEY  # masked in the print only


async def test_retry_all_errors_with_max_retries(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(env(fake_endpoint.url))
    missing = {"error": {"code": "DeploymentNotFound", "message": "not yet"}}
    fake_endpoint.reply(
        Reply(status=404, body=missing), Reply(status=404, body=missing), Reply(body={"ok": 1})
    )
    code, out, err = await run_cli(
        "raw",
        "GET",
        "/openai/deployments/new",
        "--retry-all-errors",
        "--max-retries",
        "2",
        "--retry-delay",
        "0",
    )
    assert code == 0, err
    assert json.loads(out) == {"ok": 1} and len(fake_endpoint.requests) == 3

    fake_endpoint.requests.clear()
    fake_endpoint.reply(Reply(status=404, body=missing))
    code, _, err = await run_cli("raw", "GET", "/openai/deployments/new", "--retry-delay", "0")
    assert code == 1 and "not yet" in err and len(fake_endpoint.requests) == 1  # a 404 is final by default


async def test_max_retries_caps_the_tries(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(env(fake_endpoint.url))
    fake_endpoint.respond = lambda body: Reply(status=503, body={"error": {"message": "busy"}})
    code, _, err = await run_cli("raw", "GET", "/openai/x", "--max-retries", "1", "--retry-delay", "0")
    assert code == 1 and "busy" in err and len(fake_endpoint.requests) == 2


async def test_exponential_backoff_doubles_the_delay(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(env(fake_endpoint.url))
    fake_endpoint.reply(*[Reply(status=500, body={"error": {"message": "oops"}})] * 2, Reply(body={"ok": 1}))
    code, _, err = await run_cli(
        "raw", "GET", "/openai/x", "--retry-delay", "0.15", "--exponential-backoff", "--max-retries", "3"
    )
    assert code == 0, err
    first, second, third = (seen.at for seen in fake_endpoint.requests)
    assert second - first >= 0.15 and third - second >= 0.3


async def test_retry_after_wins_over_the_retry_delay(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(env(fake_endpoint.url))
    fake_endpoint.reply(
        Reply(status=429, body={"error": {"message": "throttled"}}, headers={"Retry-After": "1"}),
        Reply(body={"ok": 1}),
    )
    code, _, err = await run_cli("raw", "GET", "/openai/x", "--retry-delay", "0")
    assert code == 0, err
    first, second = (seen.at for seen in fake_endpoint.requests)
    assert second - first >= 1.0


async def test_timeout_per_try(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    make_settings(env(fake_endpoint.url))
    fake_endpoint.reply(Reply(body={"late": True}, delay=3))
    code, _, err = await run_cli("raw", "GET", "/openai/slow", "--timeout", "0.3", "--max-retries", "0")
    assert code == 1 and "UpstreamUnavailable" in err


async def test_a_url_instead_of_a_path_is_refused(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner
) -> None:
    """Credentials go only to the configured endpoint."""
    make_settings(env(fake_endpoint.url))
    code, _, err = await run_cli("raw", "GET", "http://127.0.0.1:9/steal")
    assert code == 2 and "not a URL" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["raw", "GET", "/openai/x", "--timeout", "0"], "--timeout: must be above 0"),
        (["chat", "--concurrency", "100", "hi"], "--concurrency: at most 64"),
    ],
)
def test_out_of_range_numbers_are_refused_by_the_parser(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_ragbot(*args, cwd=tmp_path, env={"AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9"})
    assert result.returncode == 2 and message in result.stderr


class Credential:
    """Plays an azure-identity credential."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes += scopes
        return AccessToken("entra-token-1", 4_102_444_800)

    async def close(self) -> None:
        pass


async def test_entra_token_without_a_key(
    fake_endpoint: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    settings = make_settings({"AZURE_OPENAI_ENDPOINT": fake_endpoint.url, "AZURE_OPENAI_MODEL": "gpt-4o"})
    credential = Credential()
    client = connector_client(settings, purpose="raw", credential=credential)
    seen: list[dict[str, str]] = []
    fake_endpoint.reply(Reply(body={"data": []}))
    try:
        response = await client.request(
            "GET", "/openai/models", on_request=lambda m, u, h: seen.append(dict(h))
        )
    finally:
        await client.aclose()
    assert response.status == 200 and json.loads(response.body) == {"data": []}
    assert fake_endpoint.requests[0].headers["Authorization"] == "Bearer entra-token-1"
    assert "api-key" not in fake_endpoint.requests[0].headers
    assert credential.scopes == ["https://cognitiveservices.azure.com/.default"]
    assert masked_headers(seen[0], []) == ["Authorization: Bearer ***"]
