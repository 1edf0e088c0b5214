"""Hypothesis profiles: `ci` (the default) is derandomized, so a run is reproducible and a failure in CI
fails the same way on a developer's machine; `fuzz` (`make fuzz`, HYPOTHESIS_PROFILE=fuzz) is random
and runs many more examples (tests/fuzzing.py)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("fuzz", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
