"""Hypothesis profiles: `ci` (the default) is derandomized, so a run is reproducible and a failure in CI
fails the same way on a developer's machine; `fuzz` (`make fuzz`, HYPOTHESIS_PROFILE=fuzz) is random
and runs many more examples (tests/fuzzing.py). And `make_settings`, shared by the suites that read
settings as the service does."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from rag.settings import Settings, load_settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("fuzz", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def make_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[dict[str, str]], Settings]:
    """Settings read from exactly the given variables, as the service reads them: no outer AZURE_*,
    RAGBOT_* or OPENAI_*, and no `.env` (the working folder is the test's own, so `data` is in it too)."""
    for name in list(os.environ):
        if name.startswith(("AZURE_", "RAGBOT_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def make(env: dict[str, str]) -> Settings:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return load_settings(env_file=None)

    return make
