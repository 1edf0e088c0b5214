"""Builds the active :class:`~rag.contract.Answerer` from settings (see `choose_backend` for the rule)."""

from __future__ import annotations

import logging

from rag.contract import Answerer
from rag.settings import ON_YOUR_DATA_RETIRED, Settings, choose_backend

log = logging.getLogger(__name__)

RETIREMENT_WARNING = (
    f"Azure OpenAI On Your Data was retired on {ON_YOUR_DATA_RETIRED}; Azure may refuse these requests. "
    "Set RAGBOT_BACKEND=grounded (or auto) to answer from the same index with any chat deployment"
)


def build_answerer(settings: Settings) -> Answerer:
    """The backend `RAGBOT_BACKEND` (or `auto`) selects; imports only what that backend needs."""
    choice = choose_backend(settings)
    if choice.name == "on_your_data":
        from rag.azure.on_your_data import OnYourDataAnswerer

        log.warning(RETIREMENT_WARNING)
        return OnYourDataAnswerer.from_settings(settings)
    from rag.grounded.build import build_grounded

    return build_grounded(settings, local_only=choice.name == "local")
