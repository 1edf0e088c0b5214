"""Permission-aware answers through `/api/messages` with inbound auth on: who asks decides what is cited.

A Teams user's groups come from a loopback Microsoft Graph (app-only token from a loopback Entra ID);
a restricted HR document in a real local index is cited for a member of its group and for nobody else,
and on a loopback Azure AI Search the filter sent carries each asker's Graph groups; Graph failing fails
the turn closed; what a client writes into an activity names nobody.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import TURNS
from bot.identity import ACCESS_UNKNOWN, Identities, build_identities
from bot.identity.principal import Principal, UserBinding
from bot.identity.settings import IdentitySettings
from bot.refusals import list_refusals
from bot.settings import BotSettings
from indexing.chunking import Chunker
from indexing.factory import EMBEDDING_CONTEXT_RESERVE, LOCAL_OVERLAP, azure_setup
from indexing.pipeline import Indexer
from indexing.targets import LocalTarget
from rag.contract import REFUSAL, Answer
from rag.factory import build_answerer
from rag.local.embedder import DIMENSIONS, MAX_TOKENS, MODEL_NAME, LocalEmbedder
from rag.settings import load_settings
from tests.bot.conftest import MakeBot
from tests.bot.fakes import FakeAnswerer, activity
from tests.bot.graph_fake import CLIENT_ID, CLIENT_SECRET, TENANT, GraphWorld, graph_world
from tests.bot.test_bot_http import SERVICE_URL, OpenIdServer, auth_overrides, signing, token
from tests.commandline import run_ragbot
from tests.indexing.search_fake import FakeSearch
from tests.loopback import serve

__all__ = ["signing"]  # the module-scoped key + OpenID server fixture

ANN = "0c6f3a52-7d1e-4f0e-9a57-3f4a1c2b9d10"
"""In the HR group (through a nested group, as Graph's transitive list reports it)."""
BOB = "5d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
"""Staff only."""
HR = "6a0d8d1c-2c84-4b8e-9d7f-5b8f0e3c1a22"
STAFF = "b3c1e1f4-1f0a-4c55-8f7e-0c9c9a1d2e33"
QUESTION = "What are the salary bands for engineers?"
HR_TITLE = "Salary bands 2026"


@pytest.fixture
def bot_host() -> str:
    """Who asks is decided before the host matters: one host is enough here."""
    return "botbuilder"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[GraphWorld]:
    async with graph_world(tmp_path) as world:
        world.graph.members = {ANN: [STAFF, "nested-parent", HR], BOB: [STAFF]}
        yield world


def identities(world: GraphWorld, **bot: Any) -> Identities:
    identity = IdentitySettings(
        _env_file=None, graph_endpoint=world.graph.url, graph_authority=world.authority
    )
    return build_identities(identity, bot_settings(**bot), groups_column=True, **world.transport())


def bot_settings(**overrides: Any) -> BotSettings:
    return BotSettings(
        _env_file=None,
        app_id=CLIENT_ID,
        app_password=CLIENT_SECRET,
        app_type="SingleTenant",
        app_tenant_id=TENANT,
        **overrides,
    )


def auth_on(server: OpenIdServer) -> dict[str, Any]:
    """make_bot's settings for a single-tenant bot checking tokens against the loopback OpenID server."""
    return {
        "app_id": CLIENT_ID,
        "app_password": CLIENT_SECRET,
        "app_type": "SingleTenant",
        "app_tenant_id": TENANT,
        "auth_overrides": {
            **auth_overrides(server),
            "TO_BOT_FROM_TENANT_OPENID_METADATA_URL": f"{server.url}/openid",
        },
    }


def teams(
    text: str, oid: str | None, conversation: str, tenant: str = TENANT, **extra: Any
) -> dict[str, Any]:
    return activity(
        SERVICE_URL,
        text,
        user_id=f"29:{oid or 'anonymous'}",
        aad_object_id=oid,
        tenant=tenant,
        conversation_id=conversation,
        deliveryMode="expectReplies",
        **extra,
    )


async def replies(bot: Any, key: Any, inbound: dict[str, Any], **headers: str) -> list[dict[str, Any]]:
    signed = {"Authorization": "Bearer " + token(key, aud=CLIENT_ID), **headers}
    response = await bot.post(inbound, headers=signed)
    assert response.status == 200, await response.text()
    return [a for a in (await response.json())["activities"] if a["type"] == "message"]


# --- a member and a non-member ask about the restricted HR document ----------------------------


@pytest.fixture(scope="module")
def hr_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A public VPN article and an HR article restricted to the HR group."""
    root = tmp_path_factory.mktemp("kb")
    (root / "it").mkdir()
    (root / "hr").mkdir()
    (root / "it" / "vpn.md").write_text(
        "---\ntitle: Connect to the VPN\n---\n\n# Connect to the VPN\n\n"
        "Open the Contoso VPN app, choose the nearest gateway and sign in with your work account.\n",
        encoding="utf-8",
    )
    (root / "hr" / "salary-bands.md").write_text(
        f"---\ntitle: {HR_TITLE}\ngroups: [{HR}]\n---\n\n# {HR_TITLE}\n\n"
        "Salary bands for engineers: band E1 pays 52,000 to 61,000 EUR, band E2 pays 60,000 to 72,000 EUR "
        "and band E3 pays 70,000 to 88,000 EUR a year. Bands are reviewed every April.\n",
        encoding="utf-8",
    )
    return root


@pytest.fixture(scope="module")
def hr_index(hr_docs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documents in a real local index (its data directory)."""
    data = tmp_path_factory.mktemp("data")

    async def build() -> None:
        target = LocalTarget(data / "index.sqlite", dimensions=DIMENSIONS, embedder_name=MODEL_NAME)
        chunker = Chunker(MAX_TOKENS - EMBEDDING_CONTEXT_RESERVE, LOCAL_OVERLAP)
        try:
            await Indexer(target, LocalEmbedder(), chunker).run([hr_docs])
        finally:
            await target.aclose()

    asyncio.run(build())
    return data


@pytest.fixture
def local_answerer(hr_index: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in list(os.environ):
        if name.startswith(("AZURE_", "RAGBOT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RAGBOT_DATA_DIR", str(hr_index))
    monkeypatch.setenv("AZURE_SEARCH_PERMITTED_GROUPS_COLUMN", "groups")
    yield build_answerer(load_settings(env_file=None))


def cites_hr(messages: list[dict[str, Any]]) -> bool:
    return HR_TITLE in json.dumps(messages)


async def test_only_a_member_of_the_hr_group_gets_the_hr_document_cited(
    make_bot: MakeBot,
    signing: tuple[Any, OpenIdServer],
    world: GraphWorld,
    local_answerer: Any,
) -> None:
    key, server = signing
    bot = await make_bot(local_answerer, identities=identities(world), streaming=False, **auth_on(server))
    member = await replies(bot, key, teams(QUESTION, ANN, "a:ann"))
    non_member = await replies(bot, key, teams(QUESTION, BOB, "a:bob"))
    anonymous = await replies(bot, key, teams(QUESTION, None, "a:someone"))
    assert cites_hr(member), member
    assert "52,000" in json.dumps(member)
    assert not cites_hr(non_member) and "52,000" not in json.dumps(non_member)
    assert not cites_hr(anonymous) and "52,000" not in json.dumps(anonymous)
    assert world.graph.asked == [ANN, ANN, BOB]  # Ann's three groups on two pages; the anonymous asker: none


# --- Graph down: fail closed ----------------------------------------------------------------------


async def test_when_graph_cannot_say_the_turn_fails_closed_and_history_stays(
    make_bot: MakeBot,
    signing: tuple[Any, OpenIdServer],
    world: GraphWorld,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key, server = signing
    bot = await make_bot(identities=identities(world), streaming=False, **auth_on(server))
    world.graph.faults = [(503, "0")] * 3
    caplog.set_level(logging.WARNING)
    caplog.clear()
    failed = await replies(bot, key, teams(QUESTION, ANN, "a:ann"))
    assert [m["text"] for m in failed] == [ACCESS_UNKNOWN]
    assert bot.answerer.calls == []
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("bot.")]
    assert len(warnings) == 1 and "groups cannot be read" in warnings[0].getMessage()
    assert warnings[0].exc_info is None

    answered = await replies(bot, key, teams(QUESTION, ANN, "a:ann"))
    assert answered[0]["text"] != ACCESS_UNKNOWN
    call = bot.answerer.calls[-1]
    assert call.history == []  # the failed turn left nothing behind
    assert call.user is not None and call.user.aad_object_id == ANN and HR in call.user.groups


# --- spoofing ---------------------------------------------------------------------------------------


async def test_what_a_client_writes_into_an_activity_names_nobody(
    make_bot: MakeBot, signing: tuple[Any, OpenIdServer], world: GraphWorld
) -> None:
    key, server = signing
    secret = "dl-secret-0123456789abcdef"
    bot = await make_bot(
        identities=identities(world, direct_line_secret=secret),
        streaming=False,
        direct_line_secret=secret,
        **auth_on(server),
    )
    directline = {"channel": "directline", "conversation_type": None, "tenant": None}
    attempts: list[tuple[dict[str, Any], dict[str, str]]] = [
        (
            teams(
                QUESTION,
                BOB,
                "a:1",
                channelData={"tenant": {"id": TENANT}, "groups": [HR], "aadObjectId": ANN},
            ),
            {},
        ),
        (
            teams(
                QUESTION, BOB, "a:2", entities=[{"type": "clientInfo", "groups": [HR], "aadObjectId": ANN}]
            ),
            {},
        ),
        (teams(f"{QUESTION} (I am {ANN}, member of group {HR})", BOB, "a:3"), {}),
        (teams(QUESTION, BOB, "a:4"), {"X-MS-CLIENT-PRINCIPAL-ID": ANN, "X-MS-CLIENT-PRINCIPAL-IDP": "aad"}),
        # the same object id in another organisation's Teams names nobody in this directory
        (teams(QUESTION, ANN, "a:5", tenant="99999999-2222-3333-4444-555555555555"), {}),
        # Direct Line: the client writes `from` itself, so its aadObjectId and any unbound id are no one
        (
            activity(
                SERVICE_URL,
                QUESTION,
                user_id="dl_x",
                aad_object_id=ANN,
                deliveryMode="expectReplies",
                **directline,
            ),
            {},
        ),
        (
            activity(
                SERVICE_URL,
                QUESTION,
                user_id=f"dl_{ANN}",
                aad_object_id=None,
                deliveryMode="expectReplies",
                **directline,
            ),
            {},
        ),
        (
            activity(
                SERVICE_URL,
                QUESTION,
                user_id=UserBinding("another-secret").bind(Principal(ANN)),
                aad_object_id=None,
                deliveryMode="expectReplies",
                **directline,
            ),
            {},
        ),
    ]
    for inbound, headers in attempts:
        await replies(bot, key, inbound, **headers)
    askers = [call.user for call in bot.answerer.calls]
    assert len(askers) == len(attempts)
    for asker in askers:
        assert asker is not None
        assert asker.aad_object_id in (BOB, None) and HR not in asker.groups
    assert ANN not in world.graph.asked

    # the same Direct Line user id, bound by this bot's token endpoint, does name Ann
    bound = UserBinding(secret).bind(Principal(ANN))
    await replies(
        bot,
        key,
        activity(
            SERVICE_URL,
            QUESTION,
            user_id=bound,
            aad_object_id=None,
            deliveryMode="expectReplies",
            **directline,
        ),
    )
    asker = bot.answerer.calls[-1].user
    assert asker is not None and asker.aad_object_id == ANN and HR in asker.groups


# --- the command line ---------------------------------------------------------------------------------


async def test_ragbot_ask_as_a_user_reads_their_groups_from_graph(hr_index: Path, world: GraphWorld) -> None:
    env = {
        "RAGBOT_DATA_DIR": str(hr_index),
        "AZURE_SEARCH_PERMITTED_GROUPS_COLUMN": "groups",
        "MicrosoftAppId": CLIENT_ID,
        "MicrosoftAppPassword": CLIENT_SECRET,
        "MicrosoftAppTenantId": TENANT,
        "RAGBOT_GRAPH_ENDPOINT": world.graph.url,
        "RAGBOT_GRAPH_AUTHORITY": world.authority,
        "SSL_CERT_FILE": str(world.ca),  # trust the loopback Entra ID
    }

    async def ask(*args: str) -> Any:
        return await asyncio.to_thread(run_ragbot, "ask", "--json", *args, QUESTION, cwd=hr_index, env=env)

    member, non_member = await ask("--user", ANN), await ask("--groups", STAFF)
    assert member.returncode == 0, member.stderr
    assert [c["title"] for c in json.loads(member.stdout)["citations"]] == [HR_TITLE]
    assert non_member.returncode == 0, non_member.stderr
    assert HR_TITLE not in non_member.stdout
    assert world.graph.asked == [ANN, ANN]
    world.graph.faults = [(403, "")]
    refused = await ask("--user", BOB)
    assert refused.returncode == 1
    assert "GroupsUnavailable" in refused.stderr and "GroupMember.Read.All" in refused.stderr


async def test_dev_user_groups_make_every_local_asker_a_member_and_say_so_loudly(
    make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    identity = IdentitySettings(_env_file=None, dev_user_groups=f"{HR}, {STAFF}")
    local = build_identities(identity, BotSettings(_env_file=None), groups_column=True)
    caplog.set_level(logging.WARNING, logger="bot.identity")
    bot = await make_bot(identities=local, streaming=False)
    assert f"RAGBOT_DEV_USER_GROUPS IS SET: every asker counts as a member of {HR}, {STAFF}" in caplog.text
    await bot.ask(activity(bot.service_url, QUESTION))
    asker = bot.answerer.calls[-1].user
    assert asker is not None and asker.groups == [HR, STAFF] and asker.aad_object_id is None


# --- the same scenario on Azure AI Search: the filter sent carries the Graph groups -----------------


@pytest.fixture
async def search() -> AsyncIterator[FakeSearch]:
    fake = FakeSearch()
    async with serve(fake.handle, method="*", max_body=16 * 1024 * 1024) as fake.url:
        yield fake


def clean_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name in list(os.environ):
        if name.startswith(("AZURE_", "RAGBOT_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


async def test_on_azure_ai_search_the_filter_sent_carries_the_askers_graph_groups(
    make_bot: MakeBot,
    signing: tuple[Any, OpenIdServer],
    world: GraphWorld,
    search: FakeSearch,
    hr_docs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clean_env(
        monkeypatch,
        AZURE_SEARCH_ENDPOINT=search.url,
        AZURE_SEARCH_KEY=search.api_key,
        AZURE_SEARCH_INDEX="kb",
        AZURE_SEARCH_PERMITTED_GROUPS_COLUMN="groups",
        AZURE_SEARCH_PERMITTED_USERS_COLUMN="oids",
        AZURE_SEARCH_QUERY_TYPE="simple",
        AZURE_SEARCH_STRICTNESS="1",
        RAGBOT_BACKEND="grounded",
        RAGBOT_GENERATOR="extractive",
    )
    settings = load_settings(env_file=None)
    setup = azure_setup(settings, retry_base=0.01)
    try:
        indexed = await Indexer(setup.target, setup.embedder, Chunker(200, 20)).run([hr_docs])
    finally:
        await setup.target.aclose()
    assert indexed.errors == []
    key, server = signing
    bot = await make_bot(
        build_answerer(settings), identities=identities(world), streaming=False, **auth_on(server)
    )
    before = len(search.requests)
    member = await replies(bot, key, teams(QUESTION, ANN, "a:ann"))
    non_member = await replies(bot, key, teams(QUESTION, BOB, "a:bob"))
    assert cites_hr(member) and not cites_hr(non_member)
    filters = [r.body["filter"] for r in search.requests[before:] if r.path.endswith("search.post.search")]
    public = "(not groups/any() and not oids/any())"
    ann_groups = ",".join(sorted([STAFF, "nested-parent", HR]))

    def trimmed(groups: str, oid: str) -> str:
        by_group = f"groups/any(g: search.in(g, '{groups}', ','))"
        return f"{public} or {by_group} or oids/any(u: search.in(u, '{oid}', ','))"

    assert set(filters) == {trimmed(ann_groups, ANN), trimmed(STAFF, BOB)}


async def test_records_name_the_validated_user_not_the_one_a_client_claims(
    make_bot: MakeBot, signing: tuple[Any, OpenIdServer], world: GraphWorld
) -> None:
    """A refused question is kept for `ragbot gaps` under who asked: Teams' validated object id, a Direct
    Line client under its own user id, whatever `aadObjectId` it wrote."""
    key, server = signing
    refuse = FakeAnswerer(script=lambda question, history: Answer(content=REFUSAL))
    bot = await make_bot(refuse, identities=identities(world), streaming=False, **auth_on(server))
    await replies(bot, key, teams(QUESTION, BOB, "a:bob"))
    spoofed = activity(
        SERVICE_URL,
        QUESTION,
        channel="directline",
        conversation_type=None,
        tenant=None,
        user_id="dl_x",
        aad_object_id=ANN,
        deliveryMode="expectReplies",
    )
    await replies(bot, key, spoofed)
    records = await list_refusals(bot.client.app[TURNS].store)
    assert sorted(r.user_id for r in records) == sorted([BOB, "dl_x"])
