"""End to end in headless Chromium (Debian's package, driven by Playwright): the real app, the page,
Web Chat from the bundle the bot serves, the local Direct Line over a WebSocket, the turn logic.

Never skipped: a missing browser or bundle fails with what to install.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urljoin, urlsplit

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
from tests.commandline import run_ragbot

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
ARTIFACT = ARTIFACTS / "webchat.png"
SAMPLES = ROOT / "samples" / "helpdesk"
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
QUESTIONS = {
    "password": "How do I reset my password?",
    "leave": "How many days of annual leave do I get?",
    "expenses": "How do I submit an expense claim?",
}
ARTICLES = [
    "it/vpn-windows.md",
    "it/vpn-macos.md",
    "it/vpn-error-codes.md",
    "it/password-self-service-reset.md",
    "hr/annual-leave.md",
    "hr/sick-leave.md",
    "hr/expenses-submitting-claims.md",
    "hr/expense-policy.pdf",
]
"""Sample help-desk articles: the VPN ones, password, leave and expenses, and neighbours to miss."""


class Call(NamedTuple):
    question: str
    history: int
    intent: list[str]


class RecordingAnswerer:
    """The real backend, recording what each turn got (history length) and searched for (intent).

    Deltas pass on as fast as the extractive generator makes them (all within milliseconds): that the
    page still shows the text growing is the bot's pacing at work."""

    def __init__(self, inner: Answerer) -> None:
        self.inner = inner
        self.name = inner.name
        self.library = getattr(inner, "library", None)
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
            yield delta

    async def ready(self) -> str | None:
        return await self.inner.ready()

    async def aclose(self) -> None:
        await self.inner.aclose()


def build_index(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """`ragbot index` over the sample articles into a fresh data dir; returns it and filepath -> title."""
    kb, data = tmp_path / "kb", tmp_path / "data"
    titles: dict[str, str] = {}
    for name in ARTICLES:
        target = kb / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((SAMPLES / name).read_bytes())
        if name.endswith(".md"):
            titles[name] = yaml.safe_load((SAMPLES / name).read_text(encoding="utf-8").split("---")[1])[
                "title"
            ]
    titles["hr/expense-policy.pdf"] = "Travel and Expense Policy"
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


# Records what Web Chat showed over time: bot text before its final version.
OBSERVER = """
window.__seen = { texts: [] };
new MutationObserver(() => {
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
        _env_file=None, data_dir=data_dir, app_name="Fabrikam Answers", subtitle="Ask HR and IT."
    )
    app = create_app(settings, answerer, timing=TurnTiming(stream_interval=0.2, web_stream_interval=0.1))

    def bot_bubbles(page: Page) -> Locator:
        return page.locator(".webchat__bubble:not(.webchat__bubble--from-user)")

    def bot_messages() -> int:
        """Bot messages (final answers, not stream updates) that reached the page over the WebSocket."""
        return sum(
            a["type"] == "message" and a["from"].get("role") == "bot" for f in frames for a in f["activities"]
        )

    def activity_of(bubble: Locator) -> Locator:
        """The whole transcript entry of a bubble: the bubble and its status line (label, thumbs)."""
        return bubble.locator(
            "xpath=ancestor::*[contains(@class, 'webchat__basic-transcript__activity ')][1]"
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

    def sources(page: Page, bubble: Locator) -> list[tuple[str, str]]:
        """(filepath, text) of every source link in a bubble, each checked to open the cited document."""
        links = bubble.locator('a[href*="/sources/"]')
        expect(links.first).to_be_visible()
        found = []
        for link in links.all():
            href = link.get_attribute("href") or ""
            response = page.request.get(urljoin(base + "/", href))
            assert response.status == 200, href
            filepath = unquote(urlsplit(href).path.removeprefix("/sources/"))
            assert f"<title>{html.escape(titles[filepath])}</title>" in response.text(), href
            found.append((filepath, link.inner_text()))
        assert not bubble.locator('a[href*="kb.contoso.example"]').count(), "a placeholder link"
        return found

    def answered(page: Page, text: str) -> Locator:
        """Ask; the answer has working source links, the AI label and thumbs up/down."""
        bubble = ask(page, text)
        assert sources(page, bubble), bubble.inner_text()
        entry = activity_of(bubble)
        expect(entry.get_by_text("AI generated")).to_be_visible()
        expect(entry.get_by_role("button", name="Like", exact=True)).to_be_visible()
        expect(entry.get_by_role("button", name="Dislike", exact=True)).to_be_visible()
        assert "Searched for" not in bubble.inner_text()
        return bubble

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

            # The page speaks for this knowledge base: its name, its subtitle, suggestions from its titles.
            expect(page.get_by_role("heading", name="Fabrikam Answers")).to_be_visible()
            expect(page.get_by_text("Ask HR and IT.")).to_be_visible()
            expect(bot_bubbles(page).first).to_contain_text("Fabrikam Answers")
            toolbar = page.get_by_role("toolbar", name="Suggested actions")
            suggested = toolbar.locator(".webchat__suggested-action__text")
            expect(suggested).to_have_count(3)
            assert set(suggested.all_inner_texts()) <= set(titles.values()), suggested.all_inner_texts()

            # A help-desk question: an answer whose sources open the cited articles in the bot's view.
            answer = answered(page, QUESTION)
            assert any(
                titles[path] in text for path, text in sources(page, answer)
            )  # named after its article

            # A follow-up that only makes sense with the history: it searches for the VPN on a Mac.
            mac = answered(page, FOLLOW_UP)
            assert answerer.calls[-1].history == 2
            assert any("vpn" in query.lower() for query in answerer.calls[-1].intent), answerer.calls[-1]
            assert "it/vpn-macos.md" in {path for path, _ in sources(page, mac)}

            # Thumbs up with a comment on the VPN answer; it is stored as Teams feedback is.
            activity_of(answer).get_by_role("button", name="Like", exact=True).click()
            comment = page.get_by_placeholder("What was wrong or missing?")
            expect(comment).to_be_visible()
            comment.fill("Clear steps, thanks")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "webchat-feedback.png"))
            comment.press("Enter")
            expect(comment).to_be_hidden()

            for topic, question in QUESTIONS.items():
                bubble = answered(page, question)
                bubble.scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / f"webchat-{topic}.png"))
            activity_of(bot_bubbles(page).last).get_by_role("button", name="Dislike", exact=True).click()
            page.wait_for_timeout(1500)  # Web Chat posts a vote half a second after the click
            page.screenshot(path=str(ARTIFACT))
            # A thumbs-down is answered with the offer of a person.
            expect(bot_bubbles(page).last).to_contain_text("Would you like a person to take over?")
            expect(toolbar.get_by_text("Talk to a person")).to_be_visible()

            # The cited document, opened at the cited chunk.
            href = sources(page, answer)[0][0]
            view = browser.new_page(viewport={"width": 1000, "height": 800})
            link = answer.locator('a[href*="/sources/"]').first.get_attribute("href") or ""
            view.goto(urljoin(base + "/", link))
            expect(view.locator(":target")).to_be_visible()
            view.screenshot(path=str(ARTIFACTS / "sources-view.png"))
            assert titles[href] in view.title()
            view.close()

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
            assert roles == ["bot"] + ["user", "bot"] * 5 + ["bot"] + ["user", "bot"] * 2, roles

            # The hand-off: its Adaptive Card, as Web Chat renders it, lists the questions and the vote.
            box = page.get_by_placeholder("Type your message")
            box.fill("handoff")
            box.press("Enter")
            card = page.locator(".ac-adaptiveCard").last
            expect(card).to_contain_text("Hand-off to a person")
            expect(card).to_contain_text(QUESTIONS["expenses"])
            expect(card).to_contain_text("Feedback: dislike")
            expect(bot_bubbles(page).last).to_be_visible()
            card.get_by_text("Hand-off to a person").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "webchat-handoff.png"))
            finals = bot_bubbles(page).all_inner_texts()
            seen = page.evaluate("window.__seen")
        finally:
            browser.close()

    # The stream reached the browser: a readable status first, then the answer growing before its final.
    updates = [
        a
        for f in frames
        for a in f["activities"]
        if a.get("channelData", {}).get("streamType") == "streaming"
    ]
    assert updates, "no stream updates reached the browser"
    partial = [t for t in seen["texts"] for f in finals if t != f and t[:20] == f[:20]]
    assert partial, f"no answer was shown before its final version: {seen['texts']}"
    assert any(t.startswith("Searching the knowledge base") for t in seen["texts"]), seen["texts"]
    # Everything the page loaded came from this server.
    assert requests and all(url.startswith((base + "/", "blob:" + base + "/")) for url in requests), requests
    assert sockets and all(
        url.startswith(base.replace("http://", "ws://") + "/v3/directline/") for url in sockets
    )
    assert not errors, errors
    assert ARTIFACT.stat().st_size > 10_000

    # The votes are in the feedback store, listed by `ragbot feedback` like Teams feedback.
    listed = run_ragbot("feedback", "--format", "json", cwd=tmp_path, env={"RAGBOT_DATA_DIR": str(data_dir)})
    assert listed.returncode == 0, listed.stderr
    votes = {(r["reaction"], r["question"], r["comment"], r["channel_id"]) for r in json.loads(listed.stdout)}
    assert ("like", QUESTION, "Clear steps, thanks", "directline") in votes, votes
    assert ("dislike", QUESTIONS["expenses"], "", "directline") in votes, votes
