"""The shared HTTP client over loopback: retries and their headers, timeouts, error mapping, auth modes,
the client-side rate limit."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure_fake import FakeAzure, Reply

from rag.azure.client import AzureOpenAIClient
from rag.azure.on_your_data import OnYourDataAnswerer
from rag.azure.retry import backoff, server_delay
from rag.errors import AuthError, ContentFiltered, DataSourceError, Throttled, UpstreamUnavailable
from rag.settings import Settings

OK = {
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {
                "role": "assistant",
                "content": "Use the VPN client [doc1].",
                "context": {"citations": [{"content": "VPN client.", "title": "VPN"}], "intent": "vpn"},
            },
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
}


def env(url: str, **extra: str) -> dict[str, str]:
    return {
        "AZURE_OPENAI_ENDPOINT": url,
        "AZURE_OPENAI_KEY": "k",
        "AZURE_OPENAI_MODEL": "gpt-4o",
        "AZURE_SEARCH_ENDPOINT": "https://search.example",
        "AZURE_SEARCH_INDEX": "kb",
        "AZURE_SEARCH_KEY": "search-key",
        "RAGBOT_RETRY_BUDGET": "10",
        **extra,
    }


async def ask(settings: Settings, question: str = "vpn?") -> Any:
    answerer = OnYourDataAnswerer.from_settings(settings)
    try:
        return await answerer.answer([], question)
    finally:
        await answerer.aclose()


@pytest.mark.parametrize(
    ("headers", "at_least"),
    [
        ({"retry-after-ms": "1200"}, 1.2),
        ({"x-ms-retry-after-ms": "1200"}, 1.2),
        ({"Retry-After": "1"}, 1.0),
        ({"Retry-After": "http-date"}, 0.9),
    ],
    ids=["retry-after-ms", "x-ms-retry-after-ms", "retry-after-seconds", "retry-after-date"],
)
async def test_429_waits_as_the_header_asks(
    headers: dict[str, str],
    at_least: float,
    fake_azure: FakeAzure,
    make_settings: Callable[[dict[str, str]], Settings],
) -> None:
    if headers.get("Retry-After") == "http-date":
        headers = {"Retry-After": formatdate(time.time() + 2, usegmt=True)}
    throttled = {"error": {"code": "429", "message": "Rate limit is exceeded."}}
    fake_azure.reply(Reply(status=429, body=throttled, headers=headers), Reply(body=OK))
    answer = await ask(make_settings(env(fake_azure.url)))
    assert answer.content == "Use the VPN client [doc1]."
    first, second = fake_azure.requests
    assert second.at - first.at >= at_least - 0.05
    assert second.body == first.body


async def test_429_beyond_the_budget_raises_throttled_with_the_wait(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(
        Reply(status=429, body={"error": {"message": "slow down"}}, headers={"retry-after-ms": "30000"})
    )
    with pytest.raises(Throttled) as caught:
        await ask(make_settings(env(fake_azure.url, RAGBOT_RETRY_BUDGET="1")))
    assert caught.value.retry_after == 30.0
    assert len(fake_azure.requests) == 1


async def test_500_then_success(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(Reply(status=500, body={"error": {"message": "boom"}}), Reply(body=OK))
    answer = await ask(make_settings(env(fake_azure.url)))
    assert answer.citations[0].title == "VPN"
    assert len(fake_azure.requests) == 2


async def test_5xx_without_budget_is_upstream_unavailable(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(Reply(status=503, body={"error": {"message": "overloaded"}}))
    with pytest.raises(UpstreamUnavailable, match="overloaded"):
        await ask(make_settings(env(fake_azure.url, RAGBOT_RETRY_BUDGET="0")))


async def test_connection_refused_is_retried_then_unavailable(
    make_settings: Callable[[dict[str, str]], Settings],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UpstreamUnavailable, match="could not be reached"):
        await ask(make_settings(env(f"http://127.0.0.1:{port}", RAGBOT_RETRY_BUDGET="0.6")))


async def test_first_byte_timeout_then_retry_succeeds(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(Reply(body=OK, delay=1.5), Reply(body=OK))
    answer = await ask(make_settings(env(fake_azure.url, RAGBOT_REQUEST_TIMEOUT="0.4")))
    assert answer.intent == ["vpn"]
    assert len(fake_azure.requests) == 2


async def test_timeout_without_budget_is_upstream_unavailable(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(Reply(body=OK, delay=1.5))
    with pytest.raises(UpstreamUnavailable):
        await ask(make_settings(env(fake_azure.url, RAGBOT_REQUEST_TIMEOUT="0.4", RAGBOT_RETRY_BUDGET="0")))


SERVICE_SPELLING = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {
                "hate": {"filtered": False, "severity": "safe"},
                "jailbreak": {"filtered": True, "detected": True},
                "violence": {"filtered": True, "severity": "medium"},
            },
        },
    }
}
SPEC_SPELLING = {
    "error": {
        "code": "content_filter",
        "message": "filtered",
        "inner_error": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_results": {
                "sexual": {"filtered": False, "severity": "safe"},
                "jailbreak": {"filtered": True, "detected": True},
                "violence": {"filtered": True, "severity": "medium"},
            },
        },
    }
}


@pytest.mark.parametrize("payload", [SERVICE_SPELLING, SPEC_SPELLING], ids=["innererror", "inner_error"])
async def test_prompt_content_filter_both_spellings(
    payload: dict[str, Any], fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(Reply(status=400, body=payload))
    with pytest.raises(ContentFiltered) as caught:
        await ask(make_settings(env(fake_azure.url)))
    assert caught.value.source == "prompt"
    assert caught.value.categories == {"jailbreak": True, "violence": "medium"}
    assert len(fake_azure.requests) == 1


async def test_completion_content_filter(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    body = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "content_filter",
                "message": {"role": "assistant", "content": None},
                "content_filter_results": {"self_harm": {"filtered": True, "severity": "high"}},
            }
        ]
    }
    fake_azure.reply(Reply(body=body))
    with pytest.raises(ContentFiltered) as caught:
        await ask(make_settings(env(fake_azure.url)))
    assert caught.value.source == "completion" and caught.value.categories == {"self_harm": "high"}


async def test_data_sources_not_supported_is_explained(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    refused = {
        "error": {
            "message": "Unrecognized request argument supplied: data_sources",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    fake_azure.reply(Reply(status=400, body=refused), Reply(body=OK))
    answerer = OnYourDataAnswerer.from_settings(make_settings(env(fake_azure.url)))
    try:
        assert await answerer.ready() is None
        with pytest.raises(DataSourceError, match=r"does not support On Your Data.*grounded backend"):
            await answerer.answer([], "vpn?")
        assert "does not support On Your Data" in str(await answerer.ready())
        await answerer.answer([], "vpn?")
        assert await answerer.ready() is None
    finally:
        await answerer.aclose()
    assert len(fake_azure.requests) == 2  # a 400 is not retried


async def test_missing_index_is_a_data_source_error(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    message = "Invalid AzureCognitiveSearch configuration detected: The index 'kb' was not found"
    fake_azure.reply(Reply(status=400, body={"error": {"code": "400", "message": message}}))
    with pytest.raises(DataSourceError, match="index 'kb' was not found"):
        await ask(make_settings(env(fake_azure.url)))


async def test_refused_key_is_auth_error(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(
        Reply(status=401, body={"error": {"code": "401", "message": "Access denied due to invalid key"}})
    )
    with pytest.raises(AuthError, match="invalid key"):
        await ask(make_settings(env(fake_azure.url)))


class FakeCredential:
    """Plays an azure-identity async credential: hands out numbered tokens with the given lifetime."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime, self.calls, self.scopes = lifetime, 0, []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        self.scopes += list(scopes)
        return AccessToken(f"token-{self.calls}", int(time.time() + self.lifetime))

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("lifetime", "tokens"), [(3600, ["token-1", "token-1"]), (120, ["token-1", "token-2"])]
)
async def test_entra_token_is_cached_and_refreshed_before_expiry(
    lifetime: float,
    tokens: list[str],
    fake_azure: FakeAzure,
    make_settings: Callable[[dict[str, str]], Settings],
) -> None:
    settings = make_settings({k: v for k, v in env(fake_azure.url).items() if k != "AZURE_OPENAI_KEY"})
    credential = FakeCredential(lifetime)
    client = AzureOpenAIClient.from_settings(settings, credential=credential)
    fake_azure.reply(Reply(body=OK), Reply(body=OK))
    try:
        for _ in range(2):
            await client.chat({"messages": [{"role": "user", "content": "hi"}]})
    finally:
        await client.aclose()
    assert [r.headers["Authorization"] for r in fake_azure.requests] == [f"Bearer {t}" for t in tokens]
    assert all("api-key" not in r.headers for r in fake_azure.requests)
    assert set(credential.scopes) == {"https://cognitiveservices.azure.com/.default"}


async def test_openai_compatible_mode(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    settings = make_settings(
        {
            "RAGBOT_LLM_BASE_URL": fake_azure.url + "/v1",
            "RAGBOT_LLM_API_KEY": "sk-local",
            "RAGBOT_LLM_MODEL": "llama3",
        }
    )
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
    fake_azure.reply(Reply(body=OK), Reply(events=[chunk]))
    client = AzureOpenAIClient.openai_compatible(settings)
    try:
        payload = await client.chat({"messages": [{"role": "user", "content": "hi"}], "temperature": 0})
        chunks = [c async for c in client.chat_stream({"messages": [{"role": "user", "content": "hi"}]})]
    finally:
        await client.aclose()
    assert payload["usage"]["total_tokens"] == 15
    assert chunks == [chunk]
    for seen in fake_azure.requests:
        assert seen.path == "/v1/chat/completions" and seen.query == {}
        assert seen.headers["Authorization"] == "Bearer sk-local"
        assert seen.body["model"] == "llama3"
    assert fake_azure.requests[1].body["stream"] is True


async def test_client_side_rate_limit_delays_the_extra_call(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    settings = make_settings(env(fake_azure.url, RAGBOT_RATE_LIMIT_CALLS="2", RAGBOT_RATE_LIMIT_PERIOD="1"))
    fake_azure.reply(Reply(body=OK), Reply(body=OK), Reply(body=OK))
    client = AzureOpenAIClient.from_settings(settings)
    try:
        for _ in range(3):
            await client.chat({"messages": [{"role": "user", "content": "hi"}]})
    finally:
        await client.aclose()
    first, _, third = fake_azure.requests
    assert third.at - first.at >= 0.95


def test_server_delay_headers() -> None:
    assert server_delay({"Retry-After-Ms": "250", "Retry-After": "9"}) == 0.25
    assert server_delay({"x-ms-retry-after-ms": "1500"}) == 1.5
    assert server_delay({"Retry-After": "7"}) == 7.0
    assert server_delay({"Retry-After": formatdate(1_000_030, usegmt=True)}, now=1_000_000) == 30.0
    assert server_delay({"Retry-After": "soon"}) is None
    assert server_delay({"retry-after-ms": "x"}) is None
    assert server_delay({}) is None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for attempt in range(8):
        ceiling = min(16.0, 0.5 * 2**attempt)
        waits = {backoff(attempt, rng=rng) for _ in range(20)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1  # jittered


async def test_a_refused_token_is_not_reused(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    settings = make_settings({k: v for k, v in env(fake_azure.url).items() if k != "AZURE_OPENAI_KEY"})
    credential = FakeCredential(3600)
    client = AzureOpenAIClient.from_settings(settings, credential=credential)
    fake_azure.reply(
        Reply(status=401, body={"error": {"code": "401", "message": "token revoked"}}), Reply(body=OK)
    )
    try:
        with pytest.raises(AuthError, match="token revoked"):
            await client.chat({"messages": [{"role": "user", "content": "hi"}]})
        await client.chat({"messages": [{"role": "user", "content": "hi"}]})
    finally:
        await client.aclose()
    assert [r.headers["Authorization"] for r in fake_azure.requests] == ["Bearer token-1", "Bearer token-2"]
