"""Who a web chat client is, and how often it may get a token or start a conversation.

A client is its network address (an IPv6 client by its /64, which one host usually holds whole). Tokens
are cheap to ask for and conversations hold memory, so both are limited per client: without that, one
client opening conversations faster than they expire would fill the store and push everyone else out.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from aiohttp import web

from bot.directline.errors import error
from bot.http_limits import client_key
from bot.state.rates import LocalRates

log = logging.getLogger(__name__)

WINDOW_S = 60.0


def client_of(request: web.Request) -> str:
    """The peer address (not `X-Forwarded-For`, which any client can write)."""
    return client_key(request.remote)


class StartLimits:
    """At most `per_minute` token requests, and as many conversation starts, per client in any 60 s."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._rates = LocalRates(clock=clock)

    def check(self, action: str, *clients: str) -> None:
        """Count one `action` ("token", "start") for each client; raise 429 if any is over its limit."""
        for client in dict.fromkeys(clients):
            wait = self._rates.take(f"{action}|{client}", self.per_minute, WINDOW_S)
            if wait:
                if not self._rates.take(f"warned|{action}|{client}", 1, WINDOW_S):
                    log.warning(
                        "web chat: client %s is over %d %s requests a minute; refusing with 429",
                        client,
                        self.per_minute,
                        action,
                    )
                message = f"too many {action} requests from this client; retry later"
                raise error(429, "TooManyRequests", message, retry_after=max(1, math.ceil(wait)))
