"""Typed host errors: what the endpoint turns into a status code, without knowing which SDK is underneath."""

from __future__ import annotations


class HostError(Exception):
    """A failure of the host layer (inbound auth or outbound delivery), not of the turn logic."""


class Unauthorized(HostError):
    """The request carries no token the bot accepts (401); the message says why, for the log."""


class AuthUnavailable(HostError):
    """The signing keys could not be fetched and none are cached: the token cannot be checked now (503)."""


class OutboxError(HostError):
    """The channel refused or failed a send; `status` 0 means it could not be reached at all.

    `retry_after` is the channel's Retry-After in seconds (429 and 503 answers), else None.
    """

    def __init__(self, status: int, detail: str = "", retry_after: float | None = None) -> None:
        self.status = status
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(f"connector answered {status}: {detail[:200]}" if status else detail)


class CredentialError(OutboxError):
    """The bot's own token for replying could not be obtained (DNS, token endpoint, MSAL)."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, detail)
