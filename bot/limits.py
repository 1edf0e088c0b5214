"""Who may ask and how often: the tenant allow-list, and the window of the per-user turn rate limit
(counted by the state store, so replicas sharing a store share each user's count)."""

from __future__ import annotations

from collections.abc import Sequence

WINDOW_S = 60.0


def tenant_allowed(allowed: Sequence[str], tenant: str | None) -> bool:
    """An empty allow-list admits everyone; otherwise the asking tenant must be on it (case-insensitive)."""
    if not allowed:
        return True
    return tenant is not None and tenant.lower() in {t.lower() for t in allowed}
