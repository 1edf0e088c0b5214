"""Citations open: the bot serves indexed documents without a url of their own (`/sources/...`), links
its Web Chat (and, with a public host name, every channel's) sources there, and greets with the titles
at the centre of the knowledge base. The documents live in a real local index file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.state.memory import MemoryStore
from rag.contract import Answer, Citation, Library
from rag.documents import Chunk
from rag.local.embedder import DIMENSIONS, MODEL_NAME
from rag.local.retriever import LocalRetriever
from rag.local.store import LocalStore
from tests.bot.conftest import MakeBot
from tests.bot.fakes import FakeAnswerer, activity


class NoModel:
    """The index's embedder, never run: the source view and the welcome read stored vectors only."""

    name = MODEL_NAME
    dimensions = DIMENSIONS

    async def embed(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("no embedding needed")


def axis(*weights: float) -> np.ndarray:
    vector = np.zeros(DIMENSIONS, dtype=np.float32)
    vector[: len(weights)] = weights
    return vector


def chunk(filepath: str, position: int, content: str, title: str, **fields: Any) -> Chunk:
    return Chunk(
        id=f"{filepath}-{position}",
        content=content,
        title=title,
        filepath=filepath,
        chunk_id=str(position),
        content_hash="h-" + filepath,
        **fields,
    )


def build_index(path: Path) -> None:
    with LocalStore(path) as store:
        store.replace_file(
            "it/vpn.md",
            [
                chunk(
                    "it/vpn.md", 0, "# Connect\n\n1. Open the VPN app.\n2. Pick the London gateway.", "VPN"
                ),
                chunk(
                    "it/vpn.md", 1, "Pick the London gateway.\n3. Sign in <script>alert(1)</script>.", "VPN"
                ),
            ],
            np.stack([axis(1, 0.3), axis(1, 0.3)]),
        )
        store.replace_file(
            "hr/policy.pdf",
            [
                chunk("hr/policy.pdf", 0, "Claims within 30 days.", "Expense policy", page=1),
                chunk("hr/policy.pdf", 1, "Per diem: 45 GBP a night.", "Expense policy", page=2),
            ],
            np.stack([axis(0.3, 1), axis(0.3, 1)]),
        )
        store.replace_file(
            "it/vpn-mac.md",
            [chunk("it/vpn-mac.md", 0, "Open Tunnelblick.", "VPN on a Mac")],
            axis(1, 0.25)[None],
        )
        store.replace_file(
            "hr/pay.md",
            [chunk("hr/pay.md", 0, "Salary bands.", "Salary bands", group_ids=["hr"])],
            axis(1, 0.28)[None],
        )
        store.replace_file(
            "misc/canteen.md", [chunk("misc/canteen.md", 0, "Menu.", "Canteen menu")], axis(0, 0, 1)[None]
        )


def cites_vpn(question: str, history: Any = ()) -> Answer:
    return Answer(
        content="Open the app [doc1]. Per diem [doc2].",
        citations=[
            Citation(
                content="1. Open the VPN app.",
                title="VPN",
                filepath="it/vpn.md",
                chunk_id="0",
                url="https://kb.contoso.example/it/vpn",
            ),
            Citation(
                content="Per diem", title="Expense policy", filepath="hr/policy.pdf", chunk_id="1", page=2
            ),
        ],
        intent=["connect vpn"],
    )


def root_entity(activity: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in activity["entities"] if e["type"] == "https://schema.org/Message")


@dataclass
class IndexedAnswerer(FakeAnswerer):
    library: Library | None = field(default=None)


@pytest.fixture
def indexed(tmp_path: Path) -> IndexedAnswerer:
    build_index(tmp_path / "index.sqlite")
    return IndexedAnswerer(script=cites_vpn, library=LocalRetriever(tmp_path / "index.sqlite", NoModel()))


async def test_a_document_is_served_escaped_in_order_without_the_overlap(
    make_bot: MakeBot, indexed: IndexedAnswerer
) -> None:
    bot = await make_bot(indexed)
    response = await bot.client.get("/sources/it/vpn.md")
    assert response.status == 200 and response.content_type == "text/html"
    assert "script-src" not in response.headers["Content-Security-Policy"]
    page = await response.text()
    assert "<title>VPN</title>" in page and 'id="chunk=0"' in page and 'id="chunk=1"' in page
    assert page.count("Pick the London gateway.") == 1  # the overlap is shown once
    assert page.index("Open the VPN app") < page.index("3. Sign in")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    pdf = await (await bot.client.get("/sources/hr/policy.pdf")).text()
    assert pdf.index('id="page=1"') < pdf.index("Claims") < pdf.index('id="page=2"') < pdf.index("Per diem")


@pytest.mark.parametrize(
    "path",
    [
        "/sources/hr/pay.md",  # restricted to a group: nobody is known here
        "/sources/it/nothing.md",
        "/sources/it/%2e%2e/%2e%2e/etc/passwd",
        "/sources/..%2Fvpn.md",
        "/sources/%2Fetc%2Fpasswd",
    ],
)
async def test_restricted_unknown_and_traversing_paths_are_not_found(
    make_bot: MakeBot, indexed: IndexedAnswerer, path: str
) -> None:
    bot = await make_bot(indexed)
    response = await bot.client.get(path)
    assert response.status == 404
    assert "root:" not in await response.text()


async def test_web_chat_sources_open_in_the_bots_view_and_placeholder_hosts_never_link(
    make_bot: MakeBot, indexed: IndexedAnswerer
) -> None:
    bot = await make_bot(indexed, streaming=False)
    common: dict[str, Any] = {"channel": "directline", "conversation_id": "dl-1", "conversation_type": None}
    await bot.ask(activity(bot.service_url, "vpn?", **common))
    (reply,) = bot.connector.messages("dl-1")
    text = reply.activity["text"]
    assert "kb.contoso.example" not in text
    assert '[1]: /sources/it/vpn.md#chunk=0 "VPN"' in text
    assert '[2]: /sources/hr/policy.pdf#page=2 "Expense policy"' in text
    assert "Searched for" not in text  # the intent is on the quiet status line instead
    for link in ("/sources/it/vpn.md", "/sources/hr/policy.pdf"):
        assert (await bot.client.get(link)).status == 200
    entity = root_entity(reply.activity)
    assert [a["@type"] for a in entity["potentialAction"]] == ["LikeAction", "DislikeAction"]
    label = entity["citation"][0]["claimInterpreter"]
    assert label["name"] == "AI generated" and label["slogan"] == "AI generated · searched: connect vpn"

    # Teams needs an absolute address: the public host name's, else no link rather than a dead one.
    await bot.ask(activity(bot.service_url, "vpn?"))
    (teams,) = bot.connector.messages("a:personal-1")
    claims = root_entity(teams.activity)["citation"]
    assert all("url" not in c["appearance"] for c in claims)
    public = await make_bot(indexed, public_hostname="bot.contoso.com", storage=MemoryStore())
    await public.ask(activity(public.service_url, "vpn?", conversation_id="a:personal-2"))
    (linked,) = public.connector.messages("a:personal-2")
    claims = root_entity(linked.activity)["citation"]
    assert claims[0]["appearance"]["url"] == "https://bot.contoso.com/sources/it/vpn.md#chunk=0"


async def test_welcome_suggests_the_central_titles_unless_questions_are_set(
    make_bot: MakeBot, indexed: IndexedAnswerer, tmp_path: Path
) -> None:
    join: dict[str, Any] = {
        "kind": "event",
        "name": "webchat/join",
        "channel": "directline",
        "conversation_type": None,
    }
    bot = await make_bot(indexed, app_name="Fabrikam Answers")
    await bot.ask(activity(bot.service_url, conversation_id="dl-w", **join))
    (welcome,) = bot.connector.messages("dl-w")
    titles = [a["value"] for a in welcome.activity["suggestedActions"]["actions"]]
    # nearest the centre first; "VPN on a Mac" is too like "VPN", "Salary bands" is for a group only
    assert titles == ["VPN", "Expense policy", "Canteen menu"]
    assert "Fabrikam Answers" in welcome.activity["text"]
    # the index changes (another process re-indexes): the next welcome follows it
    with LocalStore(tmp_path / "index.sqlite") as store:
        store.replace_file(
            "misc/canteen.md",
            [
                chunk("misc/canteen.md", 0, "Menu.", "Cafeteria menu").model_copy(
                    update={"content_hash": "h2"}
                )
            ],
            axis(0, 0, 1)[None],
        )
    await bot.ask(activity(bot.service_url, conversation_id="dl-v", **join))
    (again,) = bot.connector.messages("dl-v")
    assert [a["value"] for a in again.activity["suggestedActions"]["actions"]][2] == "Cafeteria menu"
    asked = await make_bot(
        indexed, welcome_questions="Where is the canteen?|How do I book a room?", storage=MemoryStore()
    )
    await asked.ask(activity(asked.service_url, conversation_id="dl-x", **join))
    (set_welcome,) = asked.connector.messages("dl-x")
    assert [a["value"] for a in set_welcome.activity["suggestedActions"]["actions"]] == [
        "Where is the canteen?",
        "How do I book a room?",
    ]
