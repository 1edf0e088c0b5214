"""Stream pacing: an answer written faster than anyone reads is shown growing, not all at once.

The extractive generator has its whole answer in a few milliseconds and yields it a sentence or a list
item at a time; passed on as fast, every piece lands in the same stream update and the user sees the
answer appear at once. :func:`paced` holds each piece back until the text before it has been out for
its reading time at :data:`CHARS_PER_SECOND`, never delaying the end by more than :data:`BUDGET_S`
in all. A model that writes slower than that is passed through untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from rag.contract import AnswerDelta

CHARS_PER_SECOND = 600.0
"""About 100 words a second: fast enough to never feel slow, slow enough to be seen growing."""
BUDGET_S = 1.5
"""At most this much delay added to a whole answer, however long."""


async def paced(
    deltas: AsyncIterator[AnswerDelta],
    *,
    chars_per_second: float = CHARS_PER_SECOND,
    budget: float = BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[AnswerDelta]:
    """`deltas`, each text piece released no sooner than its place in the answer allows."""
    start: float | None = None
    written = 0
    added = 0.0
    try:
        async for delta in deltas:
            if delta.content:
                now = clock()
                if start is None:
                    start = now
                wait = min(start + written / chars_per_second - now, budget - added)
                if wait > 0:
                    await sleep(wait)
                    added += wait
                written += len(delta.content)
            yield delta
    finally:
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()
