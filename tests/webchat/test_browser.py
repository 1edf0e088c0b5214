"""End to end in headless Chromium (Debian's package, driven by Playwright): the real app, the page,
Web Chat from the bundle the bot serves, the local Direct Line over a WebSocket, the turn logic.

Never skipped: a missing browser or bundle fails with what to install.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.app import create_app
from bot.settings import BotSettings
from bot.turns import TurnTiming
from bot.web import WEBCHAT_JS
from rag.contract import Answer, AnswerDelta, Asker, Citation, Turn

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "test-artifacts" / "webchat.png"
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
WINDOWS = Citation(
    title="Connect to Contoso VPN on Windows 11",
    url="https://kb.contoso.example/it/vpn-windows",
    content="On company-managed Windows laptops the VPN connection is pushed automatically by Intune.",
)
MAC = Citation(
    title="Connect to Contoso VPN on macOS",
    url="https://kb.contoso.example/it/vpn-macos",
    content="Contoso-managed MacBooks use the built-in macOS VPN client, configured by a profile.",
)
NO_CONTEXT = "On a Mac, what would you like to do?"


class HelpDeskAnswerer:
    """Answers from two sample articles; the follow-up is only answerable with the thread's history.

    Records the history length of every call, so the test can tell what the bot remembered."""

    name = "helpdesk-fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def _answer(self, history: Sequence[Turn], question: str) -> Answer:
        self.calls.append((question, len(history)))
        if "vpn" in question.lower():
            return Answer(
                content="Open the Contoso VPN connection from the network menu; Intune installs it [doc1].",
                citations=[WINDOWS],
            )
        if "mac" in question.lower() and any("vpn" in turn.content.lower() for turn in history):
            return Answer(
                content="On a Mac the VPN comes as a profile from Company Portal [doc1].", citations=[MAC]
            )
        return Answer(content=NO_CONTEXT)

    async def answer(self, history: Sequence[Turn], question: str, user: Asker | None = None) -> Answer:
        return self._answer(history, question)

    async def stream(
        self, history: Sequence[Turn], question: str, user: Asker | None = None
    ) -> AsyncIterator[AnswerDelta]:
        answer = self._answer(history, question)
        yield AnswerDelta(citations=answer.citations, intent=[question])
        for word in answer.content.split(" "):
            await asyncio.sleep(0.08)
            yield AnswerDelta(content=word + " ")
        yield AnswerDelta(finish_reason="stop")

    async def ready(self) -> str | None:
        return None

    async def aclose(self) -> None:
        return None


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
    from playwright.sync_api import Page, expect, sync_playwright

    answerer = HelpDeskAnswerer()
    settings = BotSettings(
        _env_file=None,
        storage="memory",
        data_dir=tmp_path,
        welcome_questions=[QUESTION, "How do I reset my password?"],
    )
    app = create_app(settings, answerer, timing=TurnTiming(stream_interval=0.2))

    def bot_bubbles(page: Page) -> Any:
        return page.locator(".webchat__bubble:not(.webchat__bubble--from-user)")

    def ask(page: Page, text: str) -> None:
        box = page.get_by_placeholder("Type your message")
        box.fill(text)
        box.press("Enter")

    with serve(app) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.set_default_timeout(20_000)
            requests: list[str] = []
            sockets: list[str] = []
            frames: list[dict[str, Any]] = []
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

            # A help-desk question: an answer with a citation linking to the cited article.
            ask(page, QUESTION)
            answer = bot_bubbles(page).filter(has_text="Intune installs it")
            expect(answer).to_have_count(1)
            link = answer.locator(f'a[href="{WINDOWS.url}"]').first
            expect(link).to_be_visible()
            expect(answer).to_contain_text(str(WINDOWS.title))
            expect(bot_bubbles(page).filter(has_text=settings.app_name)).to_have_count(1)

            # A follow-up that needs the history.
            ask(page, FOLLOW_UP)
            mac = bot_bubbles(page).filter(has_text="profile from Company Portal")
            expect(mac).to_have_count(1)
            expect(mac.locator(f'a[href="{MAC.url}"]').first).to_be_visible()
            assert answerer.calls[-1] == (FOLLOW_UP, 2)
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACT))

            # Reset, then the same follow-up has no history to lean on.
            ask(page, "reset")
            expect(bot_bubbles(page).filter(has_text="forgotten this conversation")).to_have_count(1)
            ask(page, FOLLOW_UP)
            expect(bot_bubbles(page).filter(has_text=NO_CONTEXT)).to_have_count(1)
            assert answerer.calls[-1] == (FOLLOW_UP, 0)

            # Every bubble where it belongs: each answer under its question, in order.
            transcript = page.locator(".webchat__bubble").all_inner_texts()
            markers = [
                settings.app_name,
                QUESTION,
                "Intune installs it",
                FOLLOW_UP,
                "Company Portal",
                "reset",
                "forgotten this conversation",
                FOLLOW_UP,
                NO_CONTEXT,
            ]
            assert len(transcript) == len(markers), transcript
            for text, marker in zip(transcript, markers, strict=True):
                assert marker in text.replace("\u2019", "'"), (marker, transcript)
            seen = page.evaluate("window.__seen")
        finally:
            browser.close()

    # Streaming reached the browser live and was shown before the final answer; a typing indicator too.
    streamed = [
        a
        for f in frames
        for a in f["activities"]
        if a["type"] == "typing" and a.get("channelData", {}).get("streamId")
    ]
    assert streamed, "no stream updates reached the browser"
    assert any(
        t.startswith("Open the Contoso VPN") and "Intune installs it" not in t for t in seen["texts"]
    ), seen
    assert seen["typing"], "no typing indicator was shown"
    # Everything the page loaded came from this server.
    assert requests and all(url.startswith((base + "/", "blob:" + base + "/")) for url in requests), requests
    assert sockets and all(
        url.startswith(base.replace("http://", "ws://") + "/v3/directline/") for url in sockets
    )
    assert not errors, errors
    assert ARTIFACT.stat().st_size > 10_000
