"""Several prompts in one `ragbot chat` call ("multiple chat completion"): answered at once, within the
rate limit, instead of one after another.

Run by hand: `.venv/bin/python -m bench.connector_chat` (a few seconds), or as the `connector` piece of
`python -m bench`.

Figure: seconds for `chat_in_order` to answer 32 prompts (16 with --quick) from a loopback model endpoint
that takes 50 ms per answer, at the command's default concurrency (4) and at 8. Baseline, same run:
the same prompts one at a time (--concurrency 1), which is what a loop of single calls costs.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from pydantic import SecretStr

from bench.loopback import LoopbackServer
from bench.rows import Row, render
from rag.azure.client import AzureOpenAIClient
from rag.azure.connector import chat_in_order

BENCH = "connector"
MODEL_MS = 50


class SlowModel(LoopbackServer):
    """A chat completions endpoint that takes MODEL_MS to answer anything."""

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/{tail:.*}", self._answer)

    @staticmethod
    async def _answer(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(MODEL_MS / 1000)
        message = {"role": "assistant", "content": "ok"}
        return web.json_response({"choices": [{"index": 0, "finish_reason": "stop", "message": message}]})


async def _seconds(url: str, prompts: int, concurrency: int) -> float:
    client = AzureOpenAIClient(
        base_url=url, api_version="2024-10-21", api_key=SecretStr("bench"), default_deployment="gpt-4o"
    )
    bodies = [{"messages": [{"role": "user", "content": f"prompt {n}"}]} for n in range(prompts)]
    try:
        [_ async for _ in chat_in_order(client, bodies[:2], concurrency=concurrency)]  # connections warm
        start = time.perf_counter()
        results = [result async for result in chat_in_order(client, bodies, concurrency=concurrency)]
        elapsed = time.perf_counter() - start
    finally:
        await client.aclose()
    assert all(isinstance(result, dict) for result in results), results
    return elapsed


async def _measure(prompts: int) -> list[Row]:
    model = SlowModel()
    await model.start()
    try:
        sequential = await _seconds(model.url, prompts, 1)
        figures = [(concurrency, await _seconds(model.url, prompts, concurrency)) for concurrency in (4, 8)]
    finally:
        await model.stop()
    return [
        Row(
            bench=BENCH,
            figure=f"ragbot chat, {prompts} prompts in one call, --concurrency {concurrency}",
            value=seconds,
            unit="s",
            baseline="one at a time",
            baseline_value=sequential,
            higher_is_better=False,
            note=f"loopback model answering in {MODEL_MS} ms; {prompts / seconds:.0f} prompts/s",
        )
        for concurrency, seconds in figures
    ]


def rows(quick: bool = False) -> list[Row]:
    return asyncio.run(_measure(16 if quick else 32))


def main() -> None:
    print(render(rows()))


if __name__ == "__main__":
    main()
