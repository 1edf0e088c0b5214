"""The hand-off in traces and metrics: its span under the turn, the webhook call inside it, the 429."""

from __future__ import annotations

from tests.bot.conftest import MakeBot
from tests.bot.fakes import activity
from tests.bot.test_handoff import HelpDesk, help_desk  # noqa: F401  (fixture)
from tests.telemetry.conftest import Recorded


async def test_a_handoff_is_one_span_with_its_webhook_call(
    make_bot: MakeBot,
    help_desk: HelpDesk,  # noqa: F811
    traced: Recorded,
) -> None:
    help_desk.statuses = [(429, {"Retry-After": "0"})]
    bot = await make_bot(handoff_webhook=help_desk.url)
    await bot.ask(activity(bot.service_url, "handoff"))
    assert len(help_desk.posts) == 2
    handoff = traced.named("ragbot.handoff")
    assert handoff.attributes is not None
    assert handoff.attributes["ragbot.handoff.summary"] == "extractive"
    assert handoff.attributes["ragbot.handoff.delivered"] == "true"
    assert handoff in traced.children(traced.named("turn message"))
    posts = [s for s in traced.children(handoff) if s.name.startswith("POST")]
    assert len(posts) == 2, [s.name for s in traced.children(handoff)]
    throttled = traced.metric_points("ragbot.upstream.throttled")
    assert [p.attributes["ragbot.peer"] for p in throttled] == ["handoff webhook"]
