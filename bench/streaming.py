"""Streaming latency: fake upstream first token -> first streamed update on the Direct Line path.

Run by hand: `.venv/bin/python -m bench.streaming` (`--quick`: fewer turns), or as the `streaming` piece of
`python -m bench`.

`ragbot serve` runs as a child process with the On Your Data backend pointed at a loopback fake Azure
OpenAI in this process, which streams SSE in the 2024-10-21 shape. A client here plays Web Chat: it gets
a token from `/api/directline/token`, starts the conversation, listens on the WebSocket `streamUrl` and
posts questions. Per turn, the fake records when it writes the first content token (t0) and the client
when the first `streaming` update carrying that token arrives on the WebSocket (t1); the figure is t1 - t0.

Pacing is excluded: the bot sends at most one stream update per second (Teams' rule), so the fake waits
longer than that after the request before its first token, and the update loop never has to wait.
Baseline, same run: t1 - t0 when a plain aiohttp client reads the same fake stream directly (loopback and
SSE framing only). Both clocks are this process's `time.perf_counter`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.loopback import LoopbackServer, ragbot_serve
from bench.rows import Row, render

BENCH = "streaming"
FIRST_TOKEN = "Zyxwv"  # unmistakable in the streamed text
TOKENS = [FIRST_TOKEN, " connect", " with", " the", " VPN", " client", " [doc1]", "."]
TOKEN_PAUSE_S = 0.05
BEFORE_FIRST_TOKEN_S = 1.3
"""Longer than the bot's one-update-per-second pacing, so the first content update is never held back."""
TURN_TIMEOUT_S = 30.0


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    body = {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    body["choices"][0]["finish_reason"] = finish_reason
    return f"data: {json.dumps(body)}\n\n".encode()


class FakeUpstream(LoopbackServer):
    """Azure OpenAI On Your Data, streaming: context first, a pause, then paced tokens; records t0."""

    def __init__(self) -> None:
        super().__init__()
        self.first_token_at: list[float] = []

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        context = {"citations": [{"content": "Use the VPN client.", "title": "VPN guide"}], "intent": "vpn"}
        await response.write(_chunk({"role": "assistant", "context": context}))
        await asyncio.sleep(BEFORE_FIRST_TOKEN_S)
        for index, token in enumerate(TOKENS):
            if index == 0:
                self.first_token_at.append(time.perf_counter())
            await response.write(_chunk({"content": token}))
            await asyncio.sleep(TOKEN_PAUSE_S)
        await response.write(_chunk({}, finish_reason="stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/openai/deployments/{deployment}/chat/completions", self._completions)


async def direct_latencies(upstream: FakeUpstream, turns: int) -> list[float]:
    """Baseline: a bare aiohttp client reading the fake stream until the first token shows up."""
    url = f"{upstream.url}/openai/deployments/gpt/chat/completions?api-version=2024-10-21"
    samples = []
    async with aiohttp.ClientSession() as session:
        for _ in range(turns):
            async with session.post(url, json={"stream": True}) as response:
                async for line in response.content:
                    if FIRST_TOKEN.encode() in line:
                        samples.append(time.perf_counter() - upstream.first_token_at[-1])
                        break
                await response.read()
    return samples


class WebChatClient:
    """What Web Chat does on the local Direct Line: token, start, WebSocket, post messages."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.token = ""
        self.conversation = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self) -> None:
        async with self.session.post(f"{self.base}/api/directline/token") as response:
            response.raise_for_status()
            minted = await response.json()
        self.token, self.conversation = minted["token"], minted["conversationId"]
        async with self.session.post(
            f"{self.base}/v3/directline/conversations", headers=self._auth(), json={}
        ) as response:
            response.raise_for_status()
            started = await response.json()
        self.token = started["token"]
        self.ws = await self.session.ws_connect(started["streamUrl"])

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def ask(self, text: str) -> float:
        """Post `text`; returns when the first streamed update holding the first token arrived."""
        assert self.ws is not None
        activity = {"type": "message", "text": text, "from": {"id": "ignored"}, "locale": "en-US"}
        url = f"{self.base}/v3/directline/conversations/{self.conversation}/activities"
        async with self.session.post(url, headers=self._auth(), json=activity) as response:
            response.raise_for_status()
        first_update: float | None = None
        async with asyncio.timeout(TURN_TIMEOUT_S):
            async for frame in self.ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"the Direct Line stream closed ({frame.type.name})")
                for received in json.loads(frame.data).get("activities", []):
                    stream_type = (received.get("channelData") or {}).get("streamType")
                    if (
                        first_update is None
                        and stream_type == "streaming"
                        and FIRST_TOKEN in received["text"]
                    ):
                        first_update = time.perf_counter()
                    if received.get("type") == "message" and received.get("from", {}).get("role") == "bot":
                        if first_update is None:
                            raise RuntimeError(
                                f"final message without a streamed update: {received['text']!r}"
                            )
                        return first_update
        raise RuntimeError("the Direct Line stream ended")


async def ragbot_latencies(upstream: FakeUpstream, turns: int, data_dir: Path) -> list[float]:
    env = {
        "RAGBOT_DATA_DIR": str(data_dir),
        "RAGBOT_BACKEND": "on_your_data",
        "RAGBOT_STORAGE": "memory",
        "RAGBOT_USER_TURNS_PER_MINUTE": "10000",
        "AZURE_OPENAI_ENDPOINT": upstream.url,
        "AZURE_OPENAI_KEY": "bench-key",
        "AZURE_OPENAI_MODEL": "gpt",
        "AZURE_OPENAI_PREVIEW_API_VERSION": "2024-10-21",
        "AZURE_SEARCH_ENDPOINT": "https://search.invalid",
        "AZURE_SEARCH_INDEX": "kb",
        "AZURE_SEARCH_KEY": "bench-search-key",
    }
    samples = []
    async with ragbot_serve(env, data_dir / "serve.log") as server, aiohttp.ClientSession() as session:
        client = WebChatClient(session, server.url)
        await client.connect()
        for index in range(turns):
            arrived = await client.ask(f"How do I connect to the VPN? ({index})")
            samples.append(arrived - upstream.first_token_at[-1])
        if client.ws is not None:
            await client.ws.close()
    return samples


async def measure(turns: int) -> tuple[list[float], list[float]]:
    upstream = FakeUpstream()
    await upstream.start()
    try:
        direct = await direct_latencies(upstream, turns)
        with tempfile.TemporaryDirectory() as tmp:
            ragbot = await ragbot_latencies(upstream, turns, Path(tmp))
        return ragbot, direct
    finally:
        await upstream.stop()


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def rows(quick: bool = False) -> list[Row]:
    """The `streaming` piece of `python -m bench`."""
    turns = 4 if quick else 15
    ragbot, direct = asyncio.run(measure(turns))
    ms = 1000.0
    return [
        Row(
            bench=BENCH,
            figure="first upstream token -> first Direct Line stream update",
            value=statistics.median(ragbot) * ms,
            unit="ms p50",
            baseline="fake stream read directly, p50",
            baseline_value=statistics.median(direct) * ms,
            higher_is_better=False,
            note=f"{turns} turns; p95 {_p95(ragbot) * ms:.1f} ms (baseline {_p95(direct) * ms:.2f}); "
            "pacing excluded",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 turns instead of 15")
    print(render(rows(quick=parser.parse_args().quick)))


if __name__ == "__main__":
    main()
