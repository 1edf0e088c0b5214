"""Progress for a long indexing run: tqdm bars on a terminal, a few plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import Protocol, TextIO

from tqdm import tqdm

log = logging.getLogger("indexing.progress")
LOG_EVERY = 5.0  # seconds between log lines of one counter


class Bar(Protocol):
    def grow(self, n: int) -> None:
        """More work became known (totals are discovered while files are chunked)."""
        ...

    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


class _TqdmBar:
    def __init__(self, name: str, unit: str, total: int, stream: TextIO, position: int) -> None:
        self._bar = tqdm(
            total=total, desc=f"{name:<10}", unit=unit, file=stream, position=position, leave=True
        )

    def grow(self, n: int) -> None:
        self._bar.total = (self._bar.total or 0) + n
        self._bar.refresh()

    def update(self, n: int) -> None:
        if n:
            self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


class _LogBar:
    def __init__(self, name: str, unit: str, total: int) -> None:
        self.name, self.unit, self.total, self.done = name, unit, total, 0
        self._last = time.monotonic()

    def grow(self, n: int) -> None:
        self.total += n

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= LOG_EVERY:
            self._last = now
            log.info("%s: %d/%d %s", self.name, self.done, self.total, self.unit)

    def close(self) -> None:
        if self.total:
            log.info("%s: %d/%d %s done", self.name, self.done, self.total, self.unit)


class Progress:
    """Makes bars; `live` (default: stderr is a terminal) picks tqdm over log lines."""

    def __init__(self, live: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._count = 0

    def bar(self, name: str, unit: str, total: int = 0) -> Bar:
        self._count += 1
        if self.live:
            return _TqdmBar(name, unit, total, self.stream, self._count - 1)
        return _LogBar(name, unit, total)
