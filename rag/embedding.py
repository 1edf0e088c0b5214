"""What every embedding model looks like to the rest of `rag` (local ONNX model, Azure OpenAI deployment).

A structural protocol: implementations need not import it, they only have to match it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """Turns texts into vectors; `name` and `dimensions` are recorded in an index so a mismatch is caught."""

    name: str
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dimensions), one row per text, in order."""
        ...
