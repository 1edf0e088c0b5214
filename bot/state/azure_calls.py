"""The one translation of Azure SDK faults into the state seam's errors, shared by Blob and Cosmos."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from azure.core.exceptions import AzureError

from bot.state.store import StoreUnavailable

T = TypeVar("T")


async def azure_call(op: Awaitable[T], expected: tuple[type[AzureError], ...]) -> T:
    """Await `op`; the `expected` outcomes (conflict, absent) pass through for the caller to interpret,
    any other Azure fault becomes `StoreUnavailable` with its first line."""
    try:
        return await op
    except expected:
        raise
    except AzureError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise StoreUnavailable(f"{type(exc).__name__}: {first_line}") from None
