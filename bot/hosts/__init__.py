"""The host seam: which SDK hosts the turn logic (`RAGBOT_BOT_HOST=botbuilder|agents`).

Only this package imports botbuilder's hosting or the Microsoft 365 Agents SDK; the turn logic
sees activity dicts, an :class:`~bot.outbox.Outbox` and the typed errors of :mod:`bot.hosts.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.hosts.host import Host
from bot.settings import BotSettings


def build_host(settings: BotSettings, overrides: Mapping[str, Any] | None = None) -> Host:
    """The host `settings.bot_host` names; `overrides` takes botbuilder's cloud configuration names
    (`CHANNEL_SERVICE`, `TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL`, ...) for sovereign clouds and tests."""
    if settings.bot_host == "agents":
        from bot.hosts.agents_host import agents_host  # the Agents SDK is imported only when chosen

        return agents_host(settings, overrides or {})
    from bot.hosts.botbuilder_host import botbuilder_host

    return botbuilder_host(settings, overrides or {})
