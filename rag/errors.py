"""Typed failures of the answer layer; the bot turns each into a specific, friendly reply."""

from __future__ import annotations


class RagError(Exception):
    """Base of every error an answer backend raises on purpose."""


class ConfigError(RagError):
    """A setting is missing, malformed or out of range; raised at start-up, never mid-turn."""


class ContentFiltered(RagError):
    """Azure's content filter blocked the prompt or the completion."""

    def __init__(self, source: str, categories: dict[str, str | bool], message: str = "") -> None:
        self.source = source  # "prompt" or "completion"
        self.categories = categories  # category -> severity ("high") or True when only "detected"
        detail = f" - {message}" if message else ""
        super().__init__(f"content filtered ({source}): {self.named()}{detail}")

    def named(self) -> str:
        """The categories with their severity, e.g. `violence (medium), jailbreak (detected)`."""
        return (
            ", ".join(
                f"{name} ({'detected' if severity is True else severity})"
                for name, severity in self.categories.items()
            )
            or "category not given"
        )


class Throttled(RagError):
    """Still throttled (429) after the retry budget; `retry_after` is the wait the service asked for."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(message or f"throttled; retry after {retry_after:.0f} s")


class DataSourceError(RagError):
    """The data source is unusable: missing index, bad field mapping, model without On Your Data."""


class AuthError(RagError):
    """Credentials were refused (401/403) by Azure OpenAI, Azure AI Search or another model endpoint."""


class UpstreamUnavailable(RagError):
    """The model or search service failed, timed out or cut a stream short."""


class NotReady(RagError):
    """The backend cannot answer yet, e.g. the local index has not been built."""
