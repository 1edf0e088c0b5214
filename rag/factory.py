"""Builds the active :class:`~rag.contract.Answerer` from settings (see `choose_backend` for the rule)."""

from __future__ import annotations

from rag.contract import Answerer
from rag.settings import Settings, choose_backend


def build_answerer(settings: Settings) -> Answerer:
    """The backend `RAGBOT_BACKEND` (or `auto`) selects; imports only what that backend needs."""
    choice = choose_backend(settings)
    if choice.name == "on_your_data":
        from rag.azure.on_your_data import OnYourDataAnswerer

        return OnYourDataAnswerer.from_settings(settings)
    from rag.grounded.build import build_grounded

    return build_grounded(settings, local_only=choice.name == "local")
