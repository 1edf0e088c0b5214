"""The group resolver against a loopback Graph and Entra ID: paging, throttling, refused tokens, unknown
users, the cache and its bounds, one lookup in flight per user; and the identity sources' parsers."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.identity import GroupsUnavailable, Principal, build_identities, describe, from_headers, graph_groups
from bot.identity.cache import CachedGroups
from bot.identity.principal import UserBinding
from bot.identity.settings import IdentitySettings
from bot.settings import BotSettings
from rag.errors import ConfigError
from tests.bot.graph_fake import CLIENT_ID, CLIENT_SECRET, TENANT, GraphWorld, graph_world

ANN = "0c6f3a52-7d1e-4f0e-9a57-3f4a1c2b9d10"
BOB = "5d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
GONE = "99999999-0000-4000-8000-000000000000"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[GraphWorld]:
    async with graph_world(tmp_path) as world:
        world.graph.members = {ANN: ["g-hr", "g-staff", "g-nested", "g-all"], BOB: ["g-staff"]}
        yield world


def settings(world: GraphWorld, **overrides: Any) -> tuple[IdentitySettings, BotSettings]:
    identity = IdentitySettings(
        _env_file=None, graph_endpoint=world.graph.url, graph_authority=world.authority, **overrides
    )
    bot = BotSettings(
        _env_file=None,
        app_id=CLIENT_ID,
        app_password=CLIENT_SECRET,
        app_type="SingleTenant",
        app_tenant_id=TENANT,
    )
    return identity, bot


def lookup(world: GraphWorld, **overrides: Any) -> CachedGroups:
    identity, bot = settings(world, **overrides)
    return graph_groups(identity, bot, **world.transport())


async def test_every_page_is_read_with_the_bots_own_app_only_token(world: GraphWorld) -> None:
    groups = lookup(world)
    try:
        assert await groups.groups(ANN) == ["g-hr", "g-staff", "g-nested", "g-all"]
        assert world.graph.asked == [ANN, ANN]  # page size 2: two pages via @odata.nextLink
        assert world.entra.issued == 1
        assert await groups.groups(BOB) == ["g-staff"]
        assert world.entra.issued == 1  # the token is reused
    finally:
        await groups.aclose()


async def test_a_user_graph_does_not_know_has_no_groups(world: GraphWorld) -> None:
    groups = lookup(world)
    try:
        assert await groups.groups(GONE) == []
    finally:
        await groups.aclose()


async def test_throttling_is_retried_after_the_wait_graph_asks_for(world: GraphWorld) -> None:
    world.graph.faults = [(429, "0"), (503, "0")]
    groups = lookup(world)
    try:
        assert await groups.groups(BOB) == ["g-staff"]
        assert world.graph.asked == [BOB, BOB, BOB]
    finally:
        await groups.aclose()


@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        ([(429, "3600")], "HTTP 429 (TooManyRequests"),  # longer than a turn: not waited for
        ([(503, "0")] * 3, "HTTP 503 (serviceNotAvailable"),
        ([(401, "")], "HTTP 401 (InvalidAuthenticationToken"),
        ([(403, "")], "GroupMember.Read.All"),
    ],
)
async def test_what_cannot_be_read_fails_and_is_not_cached(
    world: GraphWorld, faults: list[tuple[int, str]], reason: str
) -> None:
    world.graph.faults = list(faults)
    groups = lookup(world)
    try:
        with pytest.raises(GroupsUnavailable, match=reason.replace("(", r"\(")):
            await groups.groups(ANN)
        assert len(groups) == 0
        world.graph.faults = []
        assert "g-hr" in await groups.groups(ANN)
    finally:
        await groups.aclose()


async def test_a_slow_graph_fails_within_its_deadlines(world: GraphWorld) -> None:
    world.graph.delay = 5.0
    groups = lookup(world, graph_timeout=0.2)
    try:
        with pytest.raises(GroupsUnavailable, match="did not answer"):
            await groups.groups(ANN)
        assert len(world.graph.asked) == 3  # each attempt cut at its deadline
    finally:
        await groups.aclose()


async def test_a_turn_waits_for_groups_no_longer_than_its_deadline() -> None:
    class Stuck(Counting):
        async def groups(self, object_id: str) -> list[str]:
            await asyncio.sleep(3600)
            return []

    groups = CachedGroups(Stuck(), ttl=600, max_users=10, max_bytes=10**6, deadline=0.05)
    with pytest.raises(GroupsUnavailable, match=r"longer than 0\.05 s"):
        await groups.groups(ANN)
    await groups.aclose()


async def test_no_token_fails_closed(world: GraphWorld) -> None:
    world.entra.fail = True
    groups = lookup(world)
    try:
        with pytest.raises(GroupsUnavailable, match="no token for Microsoft Graph"):
            await groups.groups(ANN)
        assert world.graph.asked == []
    finally:
        await groups.aclose()


async def test_a_next_link_to_another_host_is_not_followed(world: GraphWorld, monkeypatch: Any) -> None:
    groups = lookup(world)
    source: Any = groups.source
    real = source._page

    async def elsewhere(url: Any) -> Any:
        page = await real(url)
        page.next_link = "https://graph.evil.example/v1.0/next"
        return page

    monkeypatch.setattr(source, "_page", elsewhere)
    try:
        with pytest.raises(GroupsUnavailable, match="another host"):
            await groups.groups(ANN)
    finally:
        await groups.aclose()


async def test_one_lookup_in_flight_per_user_and_answers_kept_for_the_ttl(world: GraphWorld) -> None:
    groups = lookup(world)
    now = [0.0]
    groups.clock = lambda: now[0]
    try:
        results = await asyncio.gather(*(groups.groups(BOB) for _ in range(20)))
        assert results == [["g-staff"]] * 20
        assert world.graph.asked == [BOB]
        now[0] = 599.0
        await groups.groups(BOB)
        assert world.graph.asked == [BOB]
        now[0] = 601.0
        await groups.groups(BOB)
        assert world.graph.asked == [BOB, BOB]
    finally:
        await groups.aclose()


async def test_a_turn_that_gives_up_does_not_cancel_the_lookup_for_others(world: GraphWorld) -> None:
    groups = lookup(world)
    try:
        first = asyncio.create_task(groups.groups(BOB))
        second = asyncio.create_task(groups.groups(BOB))
        await asyncio.sleep(0)
        first.cancel()
        assert await second == ["g-staff"]
        assert world.graph.asked == [BOB]
    finally:
        await groups.aclose()


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    async def groups(self, object_id: str) -> list[str]:
        self.calls += 1
        return [f"{object_id}-group-{n}" for n in range(10)]

    async def aclose(self) -> None:
        return None


async def test_the_cache_is_bounded_in_users_and_bytes() -> None:
    by_count = CachedGroups(Counting(), ttl=600, max_users=3, max_bytes=10**6)
    for n in range(10):
        await by_count.groups(f"user-{n}")
    assert len(by_count) == 3
    by_bytes = CachedGroups(Counting(), ttl=600, max_users=1000, max_bytes=2000)
    for n in range(50):
        await by_bytes.groups(f"user-{n}")
    assert 0 < by_bytes.bytes <= 2000 and len(by_bytes) < 50
    huge = CachedGroups(Counting(), ttl=600, max_users=1000, max_bytes=400)
    await huge.groups("someone")  # an entry over a quarter of the budget is served, not kept
    assert len(huge) == 0


def test_group_lookup_without_a_tenant_or_credential_is_a_config_error(tmp_path: Path) -> None:
    identity = IdentitySettings(_env_file=None, group_lookup="graph")
    multi = BotSettings(_env_file=None, app_id=CLIENT_ID, app_password=CLIENT_SECRET)
    with pytest.raises(ConfigError, match="tenant"):
        build_identities(identity, multi, groups_column=False)
    no_secret = BotSettings(_env_file=None, app_id=CLIENT_ID, app_type="SingleTenant", app_tenant_id=TENANT)
    with pytest.raises(ConfigError, match="credential"):
        build_identities(identity, no_secret, groups_column=False)
    dev = IdentitySettings(_env_file=None, dev_user_groups="g-hr")
    with pytest.raises(ConfigError, match="local use only"):
        build_identities(dev, no_secret, groups_column=False)
    auto = build_identities(IdentitySettings(_env_file=None), no_secret, groups_column=False)
    assert auto.groups is None  # auto: no groups column, no Graph


def easy_auth(
    oid: str, tid: str = TENANT, *, idp: str = "aad", claim_oid: str | None = None
) -> dict[str, str]:
    principal = {
        "auth_typ": idp,
        "claims": [
            {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": claim_oid or oid},
            {"typ": "http://schemas.microsoft.com/identity/claims/tenantid", "val": tid},
            {"typ": "name", "val": "Ann"},
        ],
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }
    return {
        "X-MS-CLIENT-PRINCIPAL-ID": oid,
        "X-MS-CLIENT-PRINCIPAL-IDP": idp,
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode(),
    }


def test_app_service_authentication_headers_name_an_entra_user_only_when_consistent() -> None:
    assert from_headers(easy_auth(ANN)) == Principal(ANN, TENANT)
    assert from_headers(easy_auth(ANN, idp="google")) is None
    assert from_headers({**easy_auth(ANN, idp="google"), "X-MS-CLIENT-PRINCIPAL-IDP": "aad"}) is None
    assert from_headers(easy_auth(ANN, claim_oid=BOB)) is None
    assert from_headers({"X-MS-CLIENT-PRINCIPAL-ID": ANN}) is None
    assert from_headers({**easy_auth(ANN), "X-MS-CLIENT-PRINCIPAL": "not base64 json"}) is None
    assert from_headers(easy_auth("../../groups")) is None


def test_a_bound_direct_line_user_id_is_verified_by_its_mac() -> None:
    binding = UserBinding("dl-secret")
    bound = binding.bind(Principal(ANN, TENANT))
    assert bound.startswith("dl_") and len(bound) <= 64
    assert binding.verify(bound) == ANN
    assert UserBinding("another-secret").verify(bound) is None
    assert binding.verify(bound.replace(ANN, BOB)) is None
    assert binding.verify(f"dl_{ANN}") is None


def test_the_summary_says_who_can_be_identified_and_where_groups_come_from() -> None:
    local = BotSettings(_env_file=None)
    teams = BotSettings(_env_file=None, app_id=CLIENT_ID, app_type="SingleTenant", app_tenant_id=TENANT)
    auto = IdentitySettings(_env_file=None)
    assert describe(auto, local, groups_column=True).startswith("everyone is anonymous")
    assert "no groups read (RAGBOT_GROUP_LOOKUP=auto)" in describe(auto, teams, groups_column=False)
    assert "Teams users (validated activities); their groups from Microsoft Graph" in describe(
        auto, teams, groups_column=True
    )
    headers = IdentitySettings(_env_file=None, trust_principal_headers=True, group_lookup="graph")
    assert describe(headers, local, groups_column=False).startswith(
        "web chat users signed in by App Service authentication; their groups from Microsoft Graph"
    )
    dev = IdentitySettings(_env_file=None, dev_user_groups="hr-staff")
    assert describe(dev, local, groups_column=False) == (
        "every asker is in hr-staff (RAGBOT_DEV_USER_GROUPS, local use only)"
    )
