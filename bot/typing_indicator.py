"""The typing indicator while a non-streamed answer is prepared.

Sent once the answer has taken `delay` seconds, then every `period` seconds (Teams hides the
indicator after a few seconds), as botbuilder's `ShowTypingMiddleware` does: an answer that is ready
at once goes out alone, a slow one is announced. A send in flight is never cut off, so a typing
activity cannot arrive after the answer. Until `delay` has passed only a timer is armed: most
answers come first, and a timer is far cheaper to cancel than a task.
"""

from __future__ import annotations

import asyncio
import contextlib

from bot.activity import Activity
from bot.outbox import Outbox

TYPING: Activity = {"type": "typing"}


class TypingIndicator:
    def __init__(self, outbox: Outbox, delay: float, period: float) -> None:
        self._outbox = outbox
        self._period = period
        self._sending = False
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(delay, self._begin)

    def _begin(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stopped:
            self._sending = True
            try:
                await self._outbox.send(dict(TYPING))
            finally:
                self._sending = False
            if self._stopped:  # the answer came during the send: `stop()` is waiting for us
                return
            await asyncio.sleep(self._period)  # cancellation lands here, never during a send

    async def stop(self) -> None:
        """Stop before the answer is sent; raises what a failed typing send raised."""
        self._stopped = True
        self._timer.cancel()
        if self._task is None:
            return
        if not self._sending:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
