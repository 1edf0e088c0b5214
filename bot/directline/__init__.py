"""Direct Line for Web Chat: a local Direct Line 3.0 subset (no secret configured) or the token
exchange with Azure's Direct Line (`DIRECT_LINE_SECRET` set)."""

from bot.directline.azure import AzureDirectLine, DirectLineUnavailable
from bot.directline.service import Bot, LocalDirectLine

__all__ = ["AzureDirectLine", "Bot", "DirectLineUnavailable", "LocalDirectLine"]
