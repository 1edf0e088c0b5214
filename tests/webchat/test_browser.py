"""End to end in headless Chromium (Debian's package, driven by Playwright): the real app, the page,
Web Chat from the bundle the bot serves, the local Direct Line over a WebSocket, the turn logic.

Never skipped: a missing browser or bundle fails with what to install.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from aiohttp import web

from bot.app import create_app
from bot.settings import BotSettings
from bot.turns import TurnTiming
from bot.web import WEBCHAT_JS
from rag.contract import Answer, AnswerDelta, Answerer, Asker, Turn
from rag.factory import build_answerer
from rag.settings import AzureOpenAISettings, AzureSearchSettings, RagSettings, Settings

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "test-artifacts" / "webchat.png"
SAMPLES = ROOT / "samples" / "helpdesk" / "it"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
QUESTION = "How do I connect to the VPN?"
FOLLOW_UP = "And on a Mac?"
ARTICLES = ["vpn-windows", "vpn-macos", "vpn-error-codes", "password-self-service-reset"]
"""A few sample help-desk articles (samples/helpdesk/it): the VPN ones and a neighbour to miss."""


class Call(NamedTuple):
    question: str
    history: int
    intent: list[str]


class RecordingAnswerer:
    """The real backend, recording what each turn got (history length) and searched for (intent).

    Deltas are passed on 0.15 s apart, as a model would write them, so the stream is visible live."""

    def __init__(self, inner: Answerer) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[Call] = []

    async def answer(self, history: Sequence[Turn], question: str, user: Asker | None = None) -> Answer:
        answer = await self.inner.answer(history, question, user)
        self.calls.append(Call(question, len(history), answer.intent))
        return answer

    async def stream(
        self, history: Sequence[Turn], question: str, user: Asker | None = None
    ) -> AsyncIterator[AnswerDelta]:
        call = Call(question, len(history), [])
        self.calls.append(call)
        async for delta in self.inner.stream(history, question, user):
            call.intent.extend(delta.intent or [])
            if delta.content:
                await asyncio.sleep(0.15)
            yield delta

    async def ready(self) -> str | None:
        return await self.inner.ready()

    async def aclose(self) -> None:
        await self.inner.aclose()


def build_index(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """`ragbot index` over the sample articles into a fresh data dir; returns it and url -> title."""
    kb, data = tmp_path / "kb", tmp_path / "data"
    kb.mkdir()
    titles: dict[str, str] = {}
    for name in ARTICLES:
        text = (SAMPLES / f"{name}.md").read_text(encoding="utf-8")
        front = yaml.safe_load(text.split("---")[1])
        titles[front["url"]] = front["title"]
        (kb / f"{name}.md").write_text(text, encoding="utf-8")
    env = {**os.environ, "RAGBOT_DATA_DIR": str(data)}
    ragbot = Path(sys.executable).with_name("ragbot")
    done = subprocess.run(
        [str(ragbot), "index", str(kb), "--target", "local"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return data, titles


def local_answerer(data_dir: Path) -> Answerer:
    settings = Settings(
        openai=AzureOpenAISettings(_env_file=None),
        search=AzureSearchSettings(_env_file=None),
        ragbot=RagSettings(_env_file=None, data_dir=data_dir, backend="local"),
    )
    return build_answerer(settings)


@contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """Run `app` on a loopback port in a thread with its own event loop; yields the base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    host, port = runner.addresses[0][:2]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def missing_prerequisites() -> list[str]:
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (Debian package `chromium`: `make chromium`)")
    if not WEBCHAT_JS.is_file():
        missing.append(f"{WEBCHAT_JS} (the npm bundle: `make webchat`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the `playwright` Python package (`pip install -e '.[dev]'`)")
    return missing


# Records what Web Chat showed over time: a typing indicator, and bot text before its final version.
OBSERVER = """
window.__seen = { typing: false, texts: [] };
new MutationObserver(() => {
  if (document.querySelector('.webchat__typing-indicator')) window.__seen.typing = true;
  const bot = '.webchat__bubble:not(.webchat__bubble--from-user) .webchat__bubble__content';
  for (const el of document.querySelectorAll(bot)) {
    const text = el.innerText.trim();
    if (text && !window.__seen.texts.includes(text)) window.__seen.texts.push(text);
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def test_chat_in_a_real_browser(tmp_path: Path) -> None:
    missing = missing_prerequisites()
    if missing:
        pytest.fail("the browser test needs: " + "; ".join(missing))
    from playwright.sync_api import Locator, Page, expect, sync_playwright

    data_dir, titles = build_index(tmp_path)
    answerer = RecordingAnswerer(local_answerer(data_dir))
    settings = BotSettings(
        _env_file=None,
        storage="memory",
        data_dir=data_dir,
        welcome_questions=[QUESTION, "How do I reset my password?"],
    )
    app = create_app(settings, answerer, timing=TurnTiming(stream_interval=0.2))

    def bot_bubbles(page: Page) -> Locator:
        return page.locator(".webchat__bubble:not(.webchat__bubble--from-user)")

    def bot_messages() -> int:
        """Bot messages (final answers, not stream updates) that reached the page over the WebSocket."""
        return sum(
            a["type"] == "message" and a["from"].get("role") == "bot" for f in frames for a in f["activities"]
        )

    def ask(page: Page, text: str) -> Locator:
        """Send `text`; the bot's reply bubble once the reply is final (the stream is over)."""
        before = bot_messages()
        box = page.get_by_placeholder("Type your message")
        box.fill(text)
        box.press("Enter")
        for _ in range(600):
            if bot_messages() > before:
                break
            page.wait_for_timeout(100)  # lets Playwright deliver the WebSocket events
        assert bot_messages() == before + 1, f"no single reply to {text!r}"
        expect(bot_bubbles(page)).to_have_count(before + 1)
        return bot_bubbles(page).nth(before)

    def citations(bubble: Locator) -> list[tuple[str, str]]:
        """(href, text) of every link to the knowledge base in a bubble."""
        links = bubble.locator('a[href^="https://kb.contoso.example/"]')
        expect(links.first).to_be_visible()
        return [(link.get_attribute("href") or "", link.inner_text()) for link in links.all()]

    frames: list[dict[str, Any]] = []
    with serve(app) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1000})
            page.set_default_timeout(30_000)
            requests: list[str] = []
            sockets: list[str] = []
            errors: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

            def on_socket(ws: Any) -> None:
                sockets.append(ws.url)
                ws.on(
                    "framereceived", lambda payload: frames.append(json.loads(payload)) if payload else None
                )

            page.on("websocket", on_socket)
            page.add_init_script(OBSERVER)
            page.goto(base + "/")

            # Welcome on join, once, with the suggested questions.
            expect(bot_bubbles(page).first).to_contain_text(settings.app_name)
            suggested = page.get_by_role("toolbar", name="Suggested actions")
            expect(suggested.get_by_role("button", name=QUESTION)).to_be_visible()

            # A help-desk question: an answer whose citations link to the cited articles.
            answer = ask(page, QUESTION)
            links = citations(answer)
            assert links, answer.inner_text()
            assert all(href in titles for href, _ in links), links
            assert any(titles[href] in text for href, text in links), (
                links
            )  # footnote named after its article

            # A follow-up that only makes sense with the history: it searches for the VPN on a Mac.
            mac = ask(page, FOLLOW_UP)
            assert answerer.calls[-1].history == 2
            assert any("vpn" in query.lower() for query in answerer.calls[-1].intent), answerer.calls[-1]
            assert "https://kb.contoso.example/it/vpn-macos" in {href for href, _ in citations(mac)}
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACT))

            # Reset, then the same follow-up has nothing to lean on.
            expect(ask(page, "reset")).to_contain_text("forgotten this conversation")
            ask(page, FOLLOW_UP)
            assert answerer.calls[-1].history == 0
            assert not any("vpn" in query.lower() for query in answerer.calls[-1].intent), answerer.calls[-1]

            # Every bubble where it belongs: each answer under its question, the welcome once.
            roles = [
                "user" if "webchat__bubble--from-user" in (cls or "") else "bot"
                for cls in page.locator(".webchat__bubble").evaluate_all("els => els.map(e => e.className)")
            ]
            assert roles == ["bot"] + ["user", "bot"] * 4, roles
            finals = bot_bubbles(page).all_inner_texts()
            seen = page.evaluate("window.__seen")
        finally:
            browser.close()

    # The stream reached the browser and was shown before the final answer; a typing indicator too.
    updates = [
        a
        for f in frames
        for a in f["activities"]
        if a.get("channelData", {}).get("streamType") == "streaming"
    ]
    assert updates, "no stream updates reached the browser"
    partial = [t for t in seen["texts"] for f in finals if t != f and t[:20] == f[:20]]
    assert partial, f"no answer was shown before its final version: {seen['texts']}"
    assert seen["typing"], "no typing indicator was shown"
    # Everything the page loaded came from this server.
    assert requests and all(url.startswith((base + "/", "blob:" + base + "/")) for url in requests), requests
    assert sockets and all(
        url.startswith(base.replace("http://", "ws://") + "/v3/directline/") for url in sockets
    )
    assert not errors, errors
    assert ARTIFACT.stat().st_size > 10_000
