"""One streamed reply on the wire: an informative update, paced cumulative updates, the final message.

Updates go out one at a time, each at least `interval` seconds after the previous send finished
(Teams allows one stream request per second). Only the newest text is sent, so a fast answer makes
fewer updates, never a backlog. Any 403 ends the stream for good: the user pressed Stop, the two
minutes ran out, or streaming is not allowed; nothing more is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bot.activity import Activity
from bot.hosts.errors import OutboxError
from bot.outbox import Outbox
from bot.render import stream_chunk, stream_final, stream_informative


class StreamStopped(Exception):
    """The channel refused a stream request with 403; the stream is over."""


class Streamer:
    def __init__(
        self, outbox: Outbox, interval: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._outbox = outbox
        self._interval = interval
        self._clock = clock
        self.stream_id: str | None = None
        self._sequence = 0
        self._last_done = float("-inf")
        self._latest = ""
        self._sent = ""
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, informative: str, *, as_text: bool = False) -> bool:
        """Send the first (informative) update; False when the channel gave no id to tie a stream to.

        `as_text` sends it as the stream's first text instead: Web Chat (4.18) shows an informative
        update only as a faint typing indicator, a text update as a readable bubble that the answer
        then replaces."""
        first = stream_chunk if as_text else stream_informative
        self.stream_id = await self._send(first(informative, self._next()))
        if not self.stream_id:
            return False
        self._task = asyncio.create_task(self._updates())
        return True

    def offer(self, text: str) -> None:
        """The answer text so far; raises what ended the update loop (a 403 gives StreamStopped)."""
        if self._task is not None and self._task.done():
            self._task.result()
        if text and text != self._latest:
            self._latest = text
            self._changed.set()

    async def finish(self, reply: Activity) -> str:
        """Close the stream with `reply` (rendered answer or failure); returns the stream id."""
        assert self.stream_id, "start() did not return True"
        self._closing.set()
        if self._task is not None:
            await self._task
        await self._pace()
        await self._send(stream_final(reply, self.stream_id))
        return self.stream_id

    async def abort(self) -> None:
        self._closing.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, StreamStopped, OutboxError):
                await self._task

    async def _updates(self) -> None:
        while not self._closing.is_set():
            changed = asyncio.ensure_future(self._changed.wait())
            closing = asyncio.ensure_future(self._closing.wait())
            try:
                await asyncio.wait((changed, closing), return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                closing.cancel()
            if self._closing.is_set():
                return
            self._changed.clear()
            wait = self._last_done + self._interval - self._clock()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), wait)
                    return  # closing while waiting: the final message carries the whole text
            text = self._latest
            if text != self._sent:
                await self._send(stream_chunk(text, self._next(), self.stream_id))
                self._sent = text

    async def _pace(self) -> None:
        wait = self._last_done + self._interval - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    async def _send(self, activity: Activity) -> str | None:
        try:
            return await self._outbox.send(activity)
        except OutboxError as exc:
            if exc.status == 403:
                raise StreamStopped(exc.detail) from exc
            raise
        finally:
            self._last_done = self._clock()
