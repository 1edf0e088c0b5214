"""Who may ask and how often: the tenant allow-list and a per-user turn rate limit."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

WINDOW_S = 60.0


def tenant_allowed(allowed: Sequence[str], tenant: str | None) -> bool:
    """An empty allow-list admits everyone; otherwise the asking tenant must be on it (case-insensitive)."""
    if not allowed:
        return True
    return tenant is not None and tenant.lower() in {t.lower() for t in allowed}


class RateLimiter:
    """At most `per_minute` turns per user in any sliding 60 s window; memory is freed as users go idle."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._turns: dict[str, deque[float]] = {}
        self._next_sweep = clock() + WINDOW_S

    def check(self, user: str) -> float:
        """0 when the turn may go ahead (and counts it), else the seconds until it would be allowed."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        turns = self._turns.setdefault(user, deque())
        while turns and turns[0] <= now - WINDOW_S:
            turns.popleft()
        if len(turns) >= self.per_minute:
            return turns[0] + WINDOW_S - now
        turns.append(now)
        return 0.0

    def _sweep(self, now: float) -> None:
        self._turns = {user: t for user, t in self._turns.items() if t and t[-1] > now - WINDOW_S}
        self._next_sweep = now + WINDOW_S

    def __len__(self) -> int:
        return len(self._turns)
