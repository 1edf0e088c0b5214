"""Security trimming on Azure AI Search: the OData filter that shows an asker exactly what they may see.

The rule is :class:`~rag.contract.Asker`'s: documents whose groups field and users field (an `oids`-style
collection of Entra object ids, as in Microsoft's azure-search-openai-demo) are both empty are everyone's;
a restricted one is shown when it names one of the asker's groups or the asker's object id. The same
filter goes to the index search (`filter`), a knowledge base (`filterAddOn`) and On Your Data
(`data_sources[].parameters.filter`).

Ids come from the bot turn, never from user text, and every value is written as an OData string literal
(single quotes doubled), so no value can change the filter's structure.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.contract import Asker

_DELIMITER = ","


def odata_string(value: str) -> str:
    """`value` as an OData string literal."""
    return "'" + value.replace("'", "''") + "'"


def any_of(field: str, values: Sequence[str], variable: str = "g") -> str | None:
    """Documents whose `field` (a collection of strings) holds at least one of `values`; None for none.

    `search.in` with an explicit delimiter takes the plain values; a value containing the delimiter is
    matched on its own with `eq`.
    """
    ids = sorted({v for v in values if v})
    if not ids:
        return None
    plain = [v for v in ids if _DELIMITER not in v]
    clauses = []
    if plain:
        joined = odata_string(_DELIMITER.join(plain))
        clauses.append(f"search.in({variable}, {joined}, {odata_string(_DELIMITER)})")
    clauses += [f"{variable} eq {odata_string(v)}" for v in ids if _DELIMITER in v]
    return f"{field}/any({variable}: {' or '.join(clauses)})"


def access_filter(asker: Asker | None, groups_field: str | None, users_field: str | None) -> str | None:
    """What `asker` (None: anonymous) may see, given the index's groups and users fields; None when the
    index has neither (nothing to trim on). Never None otherwise: anonymous askers get the public clause.

    `(not groups/any() and not oids/any()) or groups/any(g: search.in(g, 'a,b', ',')) or oids/any(u: u eq
    'id')` with both fields; a clause per field configured.
    """
    fields = [f for f in (groups_field, users_field) if f]
    if not fields:
        return None
    asker = asker or Asker()
    public = " and ".join(f"not {f}/any()" for f in fields)
    clauses = [f"({public})" if len(fields) > 1 else public]
    if groups_field:
        clauses.append(any_of(groups_field, asker.groups, "g") or "")
    if users_field and asker.aad_object_id:
        clauses.append(any_of(users_field, [asker.aad_object_id], "u") or "")
    return " or ".join(c for c in clauses if c)


def combine_filters(*filters: str | None) -> str | None:
    """All given filters joined with `and`, each parenthesised; None when there are none."""
    present = [f for f in filters if f]
    if len(present) <= 1:
        return present[0] if present else None
    return " and ".join(f"({f})" for f in present)
