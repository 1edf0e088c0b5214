"""Security trimming: the Azure AI Search filter that limits retrieval to the asking user's groups.

Group ids come from the bot turn, never from user text, and every value is written as an OData string
literal (single quotes doubled), so no value can change the filter's structure.
"""

from __future__ import annotations

from collections.abc import Sequence

_DELIMITER = ","


def odata_string(value: str) -> str:
    """`value` as an OData string literal."""
    return "'" + value.replace("'", "''") + "'"


def groups_filter(field: str, groups: Sequence[str]) -> str:
    """Documents whose `field` (a collection of group ids) shares at least one id with `groups`.

    `search.in` with an explicit delimiter takes the plain ids; an id containing the delimiter is
    matched on its own with `eq`. No groups at all matches nothing.
    """
    ids = sorted({g for g in groups if g})
    if not ids:
        return "false"
    plain = [g for g in ids if _DELIMITER not in g]
    clauses = []
    if plain:
        joined = odata_string(_DELIMITER.join(plain))
        clauses.append(f"search.in(g, {joined}, {odata_string(_DELIMITER)})")
    clauses += [f"g eq {odata_string(g)}" for g in ids if _DELIMITER in g]
    return f"{field}/any(g: {' or '.join(clauses)})"


def combine_filters(*filters: str | None) -> str | None:
    """All given filters joined with `and`, each parenthesised; None when there are none."""
    present = [f for f in filters if f]
    if len(present) <= 1:
        return present[0] if present else None
    return " and ".join(f"({f})" for f in present)
