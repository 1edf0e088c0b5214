"""One streamed reply on the wire: an informative update, paced cumulative updates, the final message.

Updates go out one at a time, each at least `interval` seconds after the previous send finished
(Teams allows one stream request per second). Only the newest text is sent, with the citations it
uses so far (so their pop-ups work while it streams), so a fast answer makes fewer updates, never a
backlog. Any 403 ends the stream for good: the user pressed Stop, the two minutes ran out, or
streaming is not allowed; nothing more is sent.

A 429 or 5xx is throttling or a passing fault: the next request waits for the channel's Retry-After
(else a doubling backoff from `interval`). A throttled update is not sent again (the next one carries
the whole text); the first update and the final message are retried, up to `SEND_ATTEMPTS` times, so
a throttled stream still ends with its final message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bot.activity import Activity
from bot.hosts.errors import OutboxError
from bot.outbox import Outbox
from bot.render import Source, stream_chunk, stream_final, stream_informative

SEND_ATTEMPTS = 4
"""Tries of the first update and of the final message when the channel throttles or fails (429, 5xx)."""
MAX_BACKOFF_S = 8.0
"""Longest wait without a Retry-After; with one, the channel's value (bounded by the connector) wins."""


class StreamStopped(Exception):
    """The channel refused a stream request with 403; the stream is over."""


def _retryable(exc: OutboxError) -> bool:
    return exc.status == 429 or exc.status >= 500


class Streamer:
    """`markdown_text`: citations carry their excerpt as Markdown (Web Chat; see `render.entity.claim`)."""

    def __init__(
        self,
        outbox: Outbox,
        interval: float,
        *,
        markdown_text: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox
        self._interval = interval
        self._markdown_text = markdown_text
        self._clock = clock
        self.stream_id: str | None = None
        self._sequence = 0
        self._last_done = float("-inf")
        self._not_before = float("-inf")
        self._failures = 0
        self._latest = ""
        self._sources: list[Source] = []
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
        self.stream_id = await self._send_retried(lambda: first(informative, self._sequence + 1))
        if not self.stream_id:
            return False
        self._task = asyncio.create_task(self._updates())
        return True

    def offer(self, text: str, sources: list[Source] | None = None) -> None:
        """The answer text so far and the sources it cites; raises what ended the update loop (a 403
        gives StreamStopped)."""
        if self._task is not None and self._task.done():
            self._task.result()
        if text and text != self._latest:
            self._latest, self._sources = text, sources or []
            self._changed.set()

    async def finish(self, reply: Activity) -> str:
        """Close the stream with `reply` (rendered answer or failure); returns the stream id."""
        assert self.stream_id, "start() did not return True"
        self._closing.set()
        if self._task is not None:
            await self._task
        stream_id = self.stream_id
        await self._send_retried(lambda: stream_final(reply, stream_id))
        return stream_id

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
            wait = self._due() - self._clock()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), wait)
                    return  # closing while waiting: the final message carries the whole text
            text = self._latest
            if text != self._sent:
                update = stream_chunk(
                    text,
                    self._sequence + 1,
                    self.stream_id,
                    sources=self._sources,
                    markdown_text=self._markdown_text,
                )
                try:
                    await self._send(update)
                except OutboxError as exc:
                    if not _retryable(exc):
                        raise
                    self._changed.set()  # throttled: the next update, after the wait, has all the text
                else:
                    self._sent = text

    def _due(self) -> float:
        """When the next request may go: the pacing interval, or the backoff after a throttled one."""
        return max(self._last_done + self._interval, self._not_before)

    async def _send_retried(self, build: Callable[[], Activity]) -> str | None:
        """Send what `build` makes (built anew: the sequence moves only on success), waiting out
        throttling and passing faults up to `SEND_ATTEMPTS` times."""
        attempt = 1
        while True:
            wait = self._due() - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await self._send(build())
            except OutboxError as exc:
                if attempt >= SEND_ATTEMPTS or not _retryable(exc):
                    raise
            attempt += 1

    async def _send(self, activity: Activity) -> str | None:
        """One request; counts the sequence when it is an update that went through."""
        try:
            sent = await self._outbox.send(activity)
        except OutboxError as exc:
            self._last_done = self._clock()
            if exc.status == 403:
                raise StreamStopped(exc.detail) from exc
            if _retryable(exc):
                self._failures += 1
                backoff = min(MAX_BACKOFF_S, self._interval * 2**self._failures)
                self._not_before = self._last_done + (
                    exc.retry_after if exc.retry_after is not None else backoff
                )
            raise
        self._last_done = self._clock()
        self._failures = 0
        if activity.get("type") == "typing":
            self._sequence += 1
        return sent
