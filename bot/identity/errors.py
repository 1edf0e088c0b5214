"""The one failure of `bot.identity`: an asker's groups cannot be known right now."""

from __future__ import annotations

from rag.errors import RagError


class GroupsUnavailable(RagError):
    """Microsoft Graph (or the token for it) failed: the turn fails closed, never unfiltered."""
