"""The security-trimming filter sent to Azure AI Search (index search, knowledge base, On Your Data): what
it selects is exactly `Asker.may_see`, and no id, however hostile, changes its structure."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.azure.security import access_filter, any_of, combine_filters
from rag.contract import Asker
from tests.odata_filter import compile_filter

IDS = st.sampled_from(["hr", "it", "a,b", "o'brien", "x') or true or ('", " ", "oid-1", "oid-2"])
ASKERS = st.builds(
    Asker,
    aad_object_id=st.one_of(st.none(), st.just(""), IDS),
    groups=st.lists(st.one_of(IDS, st.just("")), max_size=4),
)
DOCUMENTS = st.fixed_dictionaries(
    {"groups": st.lists(IDS, max_size=3, unique=True), "oids": st.lists(IDS, max_size=3, unique=True)}
)


@given(asker=st.one_of(st.none(), ASKERS), documents=st.lists(DOCUMENTS, max_size=8))
def test_the_filter_selects_exactly_what_the_asker_may_see(
    asker: Asker | None, documents: list[dict[str, list[str]]]
) -> None:
    rule = asker or Asker()
    for groups_field, users_field in (("groups", "oids"), ("groups", None), (None, "oids")):
        built = access_filter(asker, groups_field, users_field)
        assert built is not None  # a field is configured: never unfiltered
        selects = compile_filter(built)
        for document in documents:
            groups = document["groups"] if groups_field else []
            users = document["oids"] if users_field else []
            held = {"groups": groups, "oids": users}
            assert selects(held) == rule.may_see(groups, users), (built, held)


def test_the_filter_for_each_kind_of_asker() -> None:
    public = "(not groups/any() and not oids/any())"
    assert access_filter(None, "groups", "oids") == public
    assert access_filter(Asker(user_id="web-1"), "groups", None) == "not groups/any()"
    assert access_filter(Asker(groups=["hr"]), "groups", "oids") == (
        f"{public} or groups/any(g: search.in(g, 'hr', ','))"
    )
    assert access_filter(Asker(aad_object_id="oid-1", groups=["hr"]), None, "oids") == (
        "not oids/any() or oids/any(u: search.in(u, 'oid-1', ','))"
    )
    assert access_filter(Asker(groups=["hr"], aad_object_id="oid-1"), None, None) is None


_LITERAL = re.compile(r"'(?:[^']|'')*'")


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6))
def test_no_id_changes_the_filter_structure(ids: list[str]) -> None:
    built = any_of("group_ids", ids)
    assert built is not None
    skeleton = _LITERAL.sub("S", built)
    plain = [g for g in set(ids) if "," not in g]
    with_comma = [g for g in set(ids) if "," in g]
    clauses = (["search.in(g, S, S)"] if plain else []) + ["g eq S"] * len(with_comma)
    assert skeleton == f"group_ids/any(g: {' or '.join(clauses)})"
    literals = [lit[1:-1].replace("''", "'") for lit in _LITERAL.findall(built)]
    found = set(literals[0].split(",")) if plain else set()
    found |= set(literals[2:] if plain else literals)
    assert found == set(ids)


@pytest.mark.parametrize("ids", [[], [""]])
def test_no_ids_is_no_clause(ids: list[str]) -> None:
    assert any_of("groups", ids) is None


def test_combine_filters() -> None:
    assert combine_filters(None, "") is None
    assert combine_filters("a eq 1", None) == "a eq 1"
    assert combine_filters("a eq 1", "b eq 2") == "(a eq 1) and (b eq 2)"


def test_entra_ids_compare_without_regard_to_case() -> None:
    guid = "6F1C2A5E-0B7D-4C1A-9E3F-2D8B7A6C5E4F"
    asker = Asker(aad_object_id=guid, groups=[guid.replace("6F", "7A"), "HR-Staff"])
    assert asker.aad_object_id == guid.lower() and asker.groups == [
        guid.replace("6F", "7A").lower(),
        "HR-Staff",
    ]
    assert asker.may_see([], [guid.lower()]) and asker.may_see([guid.replace("6F", "7A")], [])
    assert not asker.may_see(["hr-staff"], [])  # other ids compare exactly
    built = access_filter(asker, "groups", "oids")
    assert built is not None and guid not in built and guid.lower() in built
