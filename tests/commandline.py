"""Run the `ragbot` command line as a user runs it: a real process, no settings from the outer shell."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

OUTER_SETTINGS = (
    "AZURE_",
    "RAGBOT_",
    "Microsoft",
    "MICROSOFT_APP",
    "DIRECT_LINE",
    "OTEL_",
    "APPLICATIONINSIGHTS_",
)


def run_ragbot(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m ragbot ARGS` in `cwd` (so no stray `.env` is read) with only `env` as settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(OUTER_SETTINGS)}
    return subprocess.run(
        [sys.executable, "-m", "ragbot", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )
