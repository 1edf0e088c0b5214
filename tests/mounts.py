"""Small tmpfs mounts for tests of a full or read-only disk: a real ENOSPC / EROFS, not a mock.

Mounting needs root (CI and the development machines run as root); elsewhere the tests that need a
mount skip, saying so.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True, timeout=10)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "4m") at `path`, unmounted afterwards; skips the test where mounting is
    not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "ragbot-test", str(path))
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = getattr(exc, "stderr", "") or str(exc)
        pytest.skip(
            f"a full or read-only disk is tested on a tmpfs mount, which needs root: {reason.strip()}"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=10)


def remount_read_only(path: Path) -> None:
    _mount("-o", "remount,ro", str(path))


def fill(path: Path) -> Path:
    """Write a filler file in `path` until the disk is full; delete it to give the space back."""
    filler = path / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (65536, 512):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler
