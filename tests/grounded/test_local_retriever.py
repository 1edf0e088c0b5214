"""LocalRetriever over a real SQLite store in a tmp dir, embedded with the real MiniLM model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from grounded_fakes import chunk

from rag.contract import Asker
from rag.errors import NotReady
from rag.grounded.answerer import GroundedAnswerer
from rag.grounded.extractive import ExtractiveGenerator
from rag.local.embedder import LocalEmbedder
from rag.local.retriever import LocalRetriever
from rag.local.store import LocalStore
from rag.settings import QueryType

ARTICLES = {
    "vpn-macos": "To connect to the VPN on a Mac, install the Contoso VPN profile from Company Portal, "
    "then turn on Contoso-VPN in Control Centre.",
    "vpn-windows": "On Windows laptops the VPN connection is pushed by Intune: click the network icon and "
    "select Contoso-VPN.",
    "printer": "To add a printer on Windows, open Settings, Printers and scanners, and add FollowMe-Print.",
    "leave": "Full-time employees get 25 days of annual leave per year. Book holidays in PeopleHub.",
    "codes": "Windows Update error 0x80070005 means access denied: restart and run the update again.",
}
HR_ONLY = "Salary bands for 2025 are reviewed by the HR pay committee every April."


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture
def index(tmp_path: Path, embedder: LocalEmbedder) -> Path:
    path = tmp_path / "index.sqlite"
    with LocalStore(path) as store:
        for key, text in ARTICLES.items():
            piece = chunk(key, text)
            store.replace_file(piece.filepath, [piece], embedder.embed_sync([text]))
        hr = chunk("salary", HR_ONLY).model_copy(update={"group_ids": ["hr"]})
        store.replace_file(hr.filepath, [hr], embedder.embed_sync([HR_ONLY]))
    return path


async def test_ready_explains_a_missing_or_empty_index(tmp_path: Path, embedder: LocalEmbedder) -> None:
    missing = LocalRetriever(tmp_path / "nope" / "index.sqlite", embedder)
    reason = await missing.ready()
    assert reason and "does not exist" in reason and "ragbot index samples/helpdesk" in reason
    assert not (tmp_path / "nope").exists()  # asking did not create it
    with pytest.raises(NotReady, match="ragbot index"):
        await missing.retrieve("vpn", top=3)
    LocalStore(tmp_path / "empty.sqlite").close()
    empty = LocalRetriever(tmp_path / "empty.sqlite", embedder)
    reason = await empty.ready()
    assert reason and "is empty" in reason
    await empty.aclose()


class CountingEmbedder:
    """The real model, counting the texts it is asked to embed."""

    def __init__(self, model: LocalEmbedder) -> None:
        self.model, self.name, self.dimensions = model, model.name, model.dimensions
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        return await self.model.embed(texts)


async def test_ready_loads_the_model_and_vectors_once(index: Path, embedder: LocalEmbedder) -> None:
    counting = CountingEmbedder(embedder)
    retriever = LocalRetriever(index, counting)
    assert await retriever.ready() is None
    assert len(counting.texts) == 1  # the warm-up query ran before any question
    assert await retriever.ready() is None
    assert len(counting.texts) == 1  # and only once
    await retriever.retrieve("vpn on a mac", top=3)
    assert len(counting.texts) == 2
    await retriever.aclose()


async def test_hybrid_finds_the_right_article_and_orders_by_relevance(
    index: Path, embedder: LocalEmbedder
) -> None:
    retriever = LocalRetriever(index, embedder)
    assert await retriever.ready() is None
    hits = await retriever.retrieve("how do I connect to the vpn on my mac", top=4)
    assert hits[0].chunk.id == "vpn-macos"
    relevances = [h.rerank_score for h in hits]
    assert all(r is not None and 0.0 <= r <= 1.0 for r in relevances)
    assert relevances == sorted(relevances, reverse=True)  # type: ignore[type-var]
    assert all(h.query == "how do I connect to the vpn on my mac" for h in hits)
    await retriever.aclose()


async def test_keywords_catch_error_codes(index: Path, embedder: LocalEmbedder) -> None:
    for query_type in (QueryType.simple, QueryType.vector_simple_hybrid):
        retriever = LocalRetriever(index, embedder, query_type=query_type)
        hits = await retriever.retrieve("0x80070005", top=3)
        assert hits[0].chunk.id == "codes"
        await retriever.aclose()


async def test_unrelated_questions_score_lower_than_answerable_ones(
    index: Path, embedder: LocalEmbedder
) -> None:
    retriever = LocalRetriever(index, embedder)
    answerable = (await retriever.retrieve("how many days of annual leave do I get", top=3))[0]
    off_topic = (await retriever.retrieve("recipe for banana bread", top=3))[0]
    missing_word = (await retriever.retrieve("who is the CEO of contoso", top=3))[0]
    assert answerable.chunk.id == "leave"
    assert answerable.rerank_score is not None and off_topic.rerank_score is not None
    assert missing_word.rerank_score is not None
    assert answerable.rerank_score > max(off_topic.rerank_score, missing_word.rerank_score) + 0.15
    await retriever.aclose()


async def test_the_local_index_always_trims(index: Path, embedder: LocalEmbedder) -> None:
    retriever = LocalRetriever(index, embedder)
    query = "salary bands pay committee"

    async def found(asker: Asker | None) -> list[str]:
        return [h.chunk.id for h in await retriever.retrieve(query, top=6, asker=asker)]

    assert "salary" not in await found(Asker(groups=["it"]))
    assert "salary" not in await found(Asker())
    assert "salary" not in await found(None)  # None is anonymous, not "no trimming"
    assert (await found(Asker(groups=["hr"])))[0] == "salary"
    assert await retriever.document("salary.md") == []  # restricted: never shown whole
    await retriever.aclose()


async def test_spelling_never_corrects_to_a_word_only_restricted_documents_hold(
    index: Path, embedder: LocalEmbedder
) -> None:
    """The corrected query is shown to the asker (the intent): a correction to "committee", a word only the
    HR-only article holds, would tell anyone that such an article exists."""
    retriever = LocalRetriever(index, embedder)
    assert await retriever.spell("pay comittee") == "pay comittee"
    assert await retriever.spell("anual leave") == "annual leave"  # words public articles hold still are
    await retriever.aclose()


async def test_a_misspelt_word_counts_as_the_word_it_is_close_to(
    index: Path, embedder: LocalEmbedder
) -> None:
    retriever = LocalRetriever(index, embedder)
    right = (await retriever.retrieve("add a printer on windows", top=3))[0]
    typo = (await retriever.retrieve("add a priner on windos", top=3))[0]
    assert right.chunk.id == typo.chunk.id == "printer"
    assert typo.rerank_score == pytest.approx(right.rerank_score, abs=0.05)
    store = await retriever.store()
    assert store.terms_with_prefix("pr") == {"print": 1, "printer": 1, "profil": 1}
    await retriever.aclose()


PASSWORD = (
    "## Reset a forgotten password\n\n1. Go to the password portal from any browser.\n"
    "2. Enter your email address.\n3. Verify your identity with two methods.\n"
    "4. Choose a new password.\n5. Click Finish."
)
REST = "Take a rest break of five minutes every hour when you work at a screen."


async def test_typos_two_edits_away_are_corrected_and_the_intent_says_so(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    path = tmp_path / "index.sqlite"
    with LocalStore(path) as store:
        for key, text in {
            "password": PASSWORD,
            "rest": REST,
            "maternity": "Maternity leave is 26 weeks.",
        }.items():
            piece = chunk(key, text)
            store.replace_file(piece.filepath, [piece], embedder.embed_sync([text]))
    retriever = LocalRetriever(path, embedder)
    assert await retriever.spell("how do i rset my pasword") == "how do i reset my password"
    assert await retriever.spell("maternaty leave") == "maternity leave"  # the stem "matern" read as a word
    assert await retriever.spell("a rest break") == "a rest break"  # known words stay
    # words the index lacks stay themselves unless one alike key or sound away, or a letter missing
    assert await retriever.spell("banana bread at the vape rack") == "banana bread at the vape rack"
    bot = GroundedAnswerer(retriever, ExtractiveGenerator(embedder))
    answer = await bot.answer([], "how do i rset my pasword")
    streamed = [d async for d in bot.stream([], "how do i rset my pasword")]
    assert answer.intent == ["how do i reset my password"] == streamed[0].intent
    assert not answer.refused and "5. Click Finish [doc1]." in answer.content
    await bot.aclose()
