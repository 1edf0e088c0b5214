"""Hypothesis settings of the fuzz suites: derandomized (reproducible) by default, random and many more
examples under the `fuzz` profile (`make fuzz`, profiles in `tests/conftest.py`)."""

from __future__ import annotations

from typing import Any

from hypothesis import settings

FUZZ_FACTOR = 10
"""`make fuzz` runs this many times the examples of a CI run."""


def fuzz_settings(examples: int, **options: Any) -> settings:
    randomized = not settings.default.derandomize
    return settings(max_examples=examples * FUZZ_FACTOR if randomized else examples, deadline=None, **options)
