"""Streaming (SSE) over loopback in each dialect's chunk shape, and streams that go wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from azure_fake import FakeAzure, Reply

from rag.azure.on_your_data import OnYourDataAnswerer
from rag.contract import DOC_MARKER, AnswerBuilder, AnswerDelta, Turn
from rag.errors import ContentFiltered, UpstreamUnavailable
from rag.settings import Settings

CITATIONS = [
    {"content": "VPN needs the client.", "title": "VPN guide", "url": "https://kb/vpn", "chunk_id": "0"},
    {"content": "Error 809 means a blocked port.", "title": "VPN errors", "filepath": "it/vpn-errors.md"},
]
INTENT = '["vpn error 809", "vpn blocked port"]'


def env(fake: FakeAzure, version: str, **extra: str) -> dict[str, str]:
    return {
        "AZURE_OPENAI_ENDPOINT": fake.url,
        "AZURE_OPENAI_KEY": "k",
        "AZURE_OPENAI_MODEL": "gpt-4o",
        "AZURE_OPENAI_PREVIEW_API_VERSION": version,
        "AZURE_SEARCH_ENDPOINT": "https://search.example",
        "AZURE_SEARCH_INDEX": "kb",
        "AZURE_SEARCH_KEY": "search-key",
        "RAGBOT_RETRY_BUDGET": "0",
        **extra,
    }


def modern_chunks(pieces: list[str]) -> list[Any]:
    first = {
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "context": {"citations": CITATIONS, "intent": INTENT}},
            }
        ]
    }
    annotations = {
        "choices": [],
        "prompt_filter_results": [
            {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}
        ],
    }
    content = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 14, "total_tokens": 134}}
    return [annotations, first, *content, last, usage]


async def collect(answerer: OnYourDataAnswerer, question: str = "vpn error 809?") -> list[AnswerDelta]:
    try:
        return [d async for d in answerer.stream([], question)]
    finally:
        await answerer.aclose()


def fold(deltas: list[AnswerDelta]) -> Any:
    builder = AnswerBuilder()
    for delta in deltas:
        builder.add(delta)
    return builder.build()


def assert_no_half_markers(deltas: list[AnswerDelta]) -> None:
    for delta in deltas:
        stripped = DOC_MARKER.sub("", delta.content)
        assert "[doc" not in stripped and not stripped.endswith(("[", "[d", "[do")), delta.content


SPLIT = ["Port 1723 is blocked [do", "c2]. Install the client [", "doc", "1", "][doc1", "0] first."]


async def test_modern_stream_split_markers_usage_and_annotations(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(Reply(events=modern_chunks(SPLIT)))
    answerer = OnYourDataAnswerer.from_settings(make_settings(env(fake_azure, "2024-10-21")))
    deltas = await collect(answerer)

    assert_no_half_markers(deltas)
    answer = fold(deltas)
    assert answer.content == "".join(SPLIT)
    assert answer.cited_numbers() == [2, 1, 10]
    assert [c.title for c in answer.citations] == ["VPN guide", "VPN errors"]
    assert answer.citations[1].filepath == "it/vpn-errors.md"
    assert answer.intent == ["vpn error 809", "vpn blocked port"]
    assert answer.finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens == 134
    assert [(f.source, f.category, f.severity) for f in answer.content_filter] == [("prompt", "hate", "safe")]
    # citations arrive before any text
    first_text = next(i for i, d in enumerate(deltas) if d.content)
    assert any(d.citations for d in deltas[:first_text])
    sent = fake_azure.requests[-1].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_legacy_2023_08_stream_shape(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    tool = json.dumps({"citations": CITATIONS, "intent": "vpn error 809"})
    events = [
        {"choices": [{"index": 0, "delta": {"context": {"messages": [{"role": "tool", "content": tool}]}}}]},
        {"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        *({"choices": [{"index": 0, "delta": {"content": p}}]} for p in SPLIT),
        {"choices": [{"index": 0, "delta": {}, "end_turn": True}]},  # the closing chunk as APPold reads it
    ]
    fake_azure.reply(Reply(events=events))
    answerer = OnYourDataAnswerer.from_settings(make_settings(env(fake_azure, "2023-08-01-preview")))
    deltas = await collect(answerer)

    assert_no_half_markers(deltas)
    answer = fold(deltas)
    assert answer.content == "".join(SPLIT)
    assert len(answer.citations) == 2 and answer.intent == ["vpn error 809"]
    assert answer.finish_reason == "stop"
    assert fake_azure.requests[-1].path.endswith("/extensions/chat/completions")
    assert "stream_options" not in fake_azure.requests[-1].body


async def test_legacy_2023_06_stream_shape(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    tool = json.dumps({"citations": CITATIONS, "intent": "vpn"})
    half = len(tool) // 2

    def message(delta: dict[str, Any], **choice: Any) -> dict[str, Any]:
        return {"choices": [{"index": 0, "messages": [{"delta": delta}], **choice}]}

    events = [
        message({"role": "tool", "content": tool[:half]}),
        message({"content": tool[half:]}),
        message({"role": "assistant"}),
        *(message({"content": p}) for p in SPLIT),
        message({}, finish_reason="stop"),
    ]
    fake_azure.reply(Reply(events=events))
    answerer = OnYourDataAnswerer.from_settings(make_settings(env(fake_azure, "2023-06-01-preview")))
    answer = fold(await collect(answerer))
    assert answer.content == "".join(SPLIT)
    assert [c.content for c in answer.citations] == [c["content"] for c in CITATIONS]
    assert answer.intent == ["vpn"]


async def test_stream_without_done_is_an_error(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(Reply(events=modern_chunks(["Half an ans"])[:3], done=False))
    answerer = OnYourDataAnswerer.from_settings(make_settings(env(fake_azure, "2024-10-21")))
    with pytest.raises(UpstreamUnavailable, match="ended before it finished"):
        await collect(answerer)


async def test_stream_dropped_connection_is_an_error(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(Reply(events=modern_chunks(["Half an ans"])[:3], abort=True))
    answerer = OnYourDataAnswerer.from_settings(make_settings(env(fake_azure, "2024-10-21")))
    with pytest.raises(UpstreamUnavailable):
        await collect(answerer)


async def test_stalled_stream_times_out(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(Reply(events=modern_chunks(["slow", "er"]), pause=2.0))
    settings = make_settings(env(fake_azure, "2024-10-21", RAGBOT_REQUEST_TIMEOUT="0.5"))
    answerer = OnYourDataAnswerer.from_settings(settings)
    with pytest.raises(UpstreamUnavailable, match="broke off"):
        await collect(answerer)


async def test_completion_filtered_mid_stream(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    filtered = {"violence": {"filtered": True, "severity": "high"}}
    stop = {"index": 0, "delta": {}, "finish_reason": "content_filter", "content_filter_results": filtered}
    events = [*modern_chunks(["Some text"])[:3], {"choices": [stop]}]
    fake_azure.reply(Reply(events=events))
    answerer = OnYourDataAnswerer.from_settings(make_settings(env(fake_azure, "2024-10-21")))
    with pytest.raises(ContentFiltered) as caught:
        await collect(answerer)
    assert caught.value.source == "completion" and caught.value.categories == {"violence": "high"}


async def test_stream_folds_to_the_same_answer_as_answer(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    """The contract: folding the deltas gives what answer() returns for the same reply."""
    text = "".join(SPLIT)
    whole = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": text,
                    "context": {"citations": CITATIONS, "intent": INTENT},
                },
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 14, "total_tokens": 134},
        "prompt_filter_results": [
            {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}
        ],
    }
    fake_azure.reply(Reply(body=whole), Reply(events=modern_chunks(SPLIT)))
    settings = make_settings(env(fake_azure, "2024-10-21"))
    answerer = OnYourDataAnswerer.from_settings(settings)
    history = [Turn(role="user", content="hi"), Turn(role="assistant", content="hello")]
    try:
        direct = await answerer.answer(history, "vpn error 809?")
        streamed = fold([d async for d in answerer.stream(history, "vpn error 809?")])
    finally:
        await answerer.aclose()
    assert streamed == direct


async def test_large_context_chunk(
    fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    """A context chunk far larger than aiohttp's line limit (128 KiB) still arrives whole."""
    big = [{"content": "x" * 60_000 + str(i), "title": f"doc {i}"} for i in range(5)]
    events = [
        {
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "context": {"citations": big, "intent": "big"}}}
            ]
        },
        {"choices": [{"index": 0, "delta": {"content": "See [doc5]."}, "finish_reason": "stop"}]},
    ]
    fake_azure.reply(Reply(events=events))
    answerer = OnYourDataAnswerer.from_settings(make_settings(env(fake_azure, "2024-10-21")))
    answer = fold(await collect(answerer))
    assert [c.content[-1] for c in answer.citations] == ["0", "1", "2", "3", "4"]
    assert answer.content == "See [doc5]."


GARBLED = {
    "not UTF-8": b'data: {"choices": [{"index": 0, "delta": {"content": "\xff\xfe"}}]}\n\n',
    "not JSON": '{"choices": [{"delta": {"content": "Open',
    "not an object": "[1, 2]",
    "wrong shape": {"choices": [{"index": 0, "delta": "text"}]},
}


@pytest.mark.parametrize("event", list(GARBLED.values()), ids=list(GARBLED))
async def test_garbled_stream_is_upstream_unavailable(
    event: Any, fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(Reply(events=[modern_chunks(["Open"])[1], event]))
    answerer = OnYourDataAnswerer.from_settings(make_settings(env(fake_azure, "2024-10-21")))
    with pytest.raises(UpstreamUnavailable):
        await collect(answerer)


@pytest.mark.parametrize(
    "body", [b"<html>gateway</html>", b"\xff\xfe", b"[1]", json.dumps({"choices": "none"}).encode()]
)
async def test_garbled_body_is_upstream_unavailable(
    body: bytes, fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    fake_azure.reply(Reply(body=body))
    answerer = OnYourDataAnswerer.from_settings(make_settings(env(fake_azure, "2024-10-21")))
    try:
        with pytest.raises(UpstreamUnavailable):
            await answerer.answer([], "q")
    finally:
        await answerer.aclose()
