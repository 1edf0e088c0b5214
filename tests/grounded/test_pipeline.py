"""GroundedAnswerer: On Your Data's per-turn semantics with in-test retrievers and generators."""

from __future__ import annotations

import pytest
from grounded_fakes import CitingGenerator, DictRetriever, FixedRewriter, hit

from rag.contract import REFUSAL, AnswerBuilder, Asker, Turn
from rag.grounded.answerer import GroundedAnswerer, GroundingOptions
from rag.grounded.extractive import ExtractiveGenerator
from rag.grounded.strictness import CUTS, select


def answerer(results, *, rewriter=None, **options) -> GroundedAnswerer:  # type: ignore[no-untyped-def]
    return GroundedAnswerer(
        DictRetriever(results), CitingGenerator(), rewriter=rewriter, options=GroundingOptions(**options)
    )


@pytest.mark.parametrize("strictness", [1, 2, 3, 4, 5])
async def test_strictness_keeps_documents_above_both_cuts(strictness: int) -> None:
    cut = CUTS[strictness]
    hits = [
        hit("best", 0.95),
        hit("close", max(cut.floor, cut.ratio * 0.95) + 0.01),
        hit("weak", max(cut.floor, cut.ratio * 0.95) - 0.01),
    ]
    bot = answerer({"q": hits}, strictness=strictness, include_all_retrieved=True)
    answer = await bot.answer([], "q")
    assert [c.title for c in answer.citations] == ["best", "close"]
    reasons = {d.title: d.filter_reason for d in answer.all_retrieved_documents}
    assert reasons == {"best": None, "close": None, "weak": "score"}


def test_cuts_tighten_with_strictness() -> None:
    floors = [CUTS[s].floor for s in range(1, 6)]
    ratios = [CUTS[s].ratio for s in range(1, 6)]
    assert floors == sorted(floors) and len(set(floors)) == 5
    assert ratios == sorted(ratios) and len(set(ratios)) == 5
    hits = [hit(f"d{i}", 0.9 - 0.05 * i) for i in range(12)]
    kept = [len(select(hits, strictness=s, top_n=50).kept) for s in range(1, 6)]
    assert kept == sorted(kept, reverse=True) and kept[0] > kept[-1]


async def test_top_n_caps_in_rank_order_and_reports_the_rest() -> None:
    hits = [hit(f"d{i}", 0.9 - 0.01 * i) for i in range(8)]
    bot = answerer({"q": hits}, top_n_documents=3, strictness=1, include_all_retrieved=True)
    answer = await bot.answer([], "q")
    assert [c.title for c in answer.citations] == ["d0", "d1", "d2"]
    dropped = [d.title for d in answer.all_retrieved_documents if d.filter_reason == "rerank"]
    assert dropped == ["d3", "d4", "d5", "d6", "d7"]


async def test_in_scope_refuses_with_on_your_data_wording_when_nothing_is_left() -> None:
    bot = answerer({"q": [hit("weak", CUTS[3].floor - 0.05)]})
    answer = await bot.answer([], "q")
    assert answer.content == REFUSAL
    assert answer.refused and answer.citations == [] and answer.intent == ["q"]
    assert bot.generator.seen == []  # type: ignore[attr-defined]


async def test_out_of_scope_lets_the_generator_answer_without_documents() -> None:
    bot = answerer({"q": []}, in_scope=False)
    answer = await bot.answer([], "q")
    assert bot.generator.seen == [[]]  # type: ignore[attr-defined]
    assert answer.citations == [] and not answer.refused


async def test_doc_numbers_follow_the_citation_order() -> None:
    bot = answerer({"q": [hit("alpha", 0.9), hit("beta", 0.8), hit("gamma", 0.85)]}, strictness=1)
    answer = await bot.answer([], "q")
    assert [c.title for c in answer.citations] == ["alpha", "beta", "gamma"]
    for number in answer.cited_numbers():
        title = answer.citations[number - 1].title
        assert f"{title} says so [doc{number}]" in answer.content


async def test_follow_up_is_rewritten_with_the_previous_intent() -> None:
    results = {"How do I connect to the VPN on a Mac": [hit("vpn-mac", 0.8)]}
    bot = answerer(results)
    history = [
        Turn(role="user", content="vpn windows?"),
        Turn(
            role="assistant",
            content="Use the VPN menu [doc1].",
            intent=["How do I connect to the VPN on Windows"],
        ),
    ]
    answer = await bot.answer(history, "and on a Mac?")
    assert answer.intent == ["How do I connect to the VPN on a Mac"]
    assert [c.title for c in answer.citations] == ["vpn-mac"]


async def test_several_queries_are_fused_by_rank() -> None:
    results = {
        "first": [hit("only-first", 0.9), hit("both", 0.8)],
        "second": [hit("both", 0.85), hit("only-second", 0.9)],
    }
    bot = answerer(results, rewriter=FixedRewriter(["first", "second"]), strictness=1)
    answer = await bot.answer([], "anything")
    assert answer.intent == ["first", "second"]
    assert answer.citations[0].title == "both"
    assert {c.title for c in answer.citations} == {"both", "only-first", "only-second"}
    assert answer.citations[0].score == 0.85  # the best relevance any query gave it
    assert sorted(q for q, _, _ in bot.retriever.calls) == ["first", "second"]  # type: ignore[attr-defined]


async def test_max_search_queries_limits_the_searches() -> None:
    bot = answerer({}, rewriter=FixedRewriter(["a", "b", "c", "d"]), max_search_queries=2)
    answer = await bot.answer([], "x")
    assert answer.intent == ["a", "b"]
    assert [q for q, _, _ in bot.retriever.calls] == ["a", "b"]  # type: ignore[attr-defined]


async def test_the_asker_reaches_the_retriever_and_anonymous_is_explicit() -> None:
    bot = answerer({"q": []})
    asker = Asker(user_id="u", aad_object_id="oid-1", groups=["hr", "all"])
    await bot.answer([], "q", asker)
    await bot.answer([], "q")
    assert [call[2] for call in bot.retriever.calls] == [asker, Asker()]  # type: ignore[attr-defined]


async def test_a_restricted_hit_the_retriever_let_through_is_dropped() -> None:
    """Defence in depth: a hit whose access list came back is checked against the asker again."""
    hr = hit("salary", 0.9)
    hr.chunk.group_ids = ["hr"]
    mine = hit("my-review", 0.85)
    mine.chunk.user_ids = ["oid-1"]
    bot = answerer({"q": [hr, mine, hit("public", 0.8)]}, strictness=1)

    async def titles(asker: Asker | None) -> list[str | None]:
        return [c.title for c in (await bot.answer([], "q", asker)).citations]

    assert await titles(None) == ["public"]
    assert await titles(Asker(groups=["it"], aad_object_id="oid-2")) == ["public"]
    assert await titles(Asker(groups=["hr"])) == ["salary", "public"]
    assert await titles(Asker(aad_object_id="oid-1")) == ["my-review", "public"]


@pytest.mark.parametrize("generator", [CitingGenerator(), ExtractiveGenerator()])
async def test_stream_folds_to_the_same_answer(generator) -> None:  # type: ignore[no-untyped-def]
    content = "To reset your password open the portal. Then choose Reset and follow the steps."
    results = {"reset password": [hit("reset", 0.9, content), hit("other", 0.7, "Printers are on floor 2.")]}
    bot = GroundedAnswerer(DictRetriever(results), generator, options=GroundingOptions(strictness=1))
    deltas = [d async for d in bot.stream([], "reset password")]
    assert deltas[0].citations is not None and deltas[0].intent == ["reset password"]
    assert deltas[0].content == ""
    assert all(d.citations is None for d in deltas[1:])
    builder = AnswerBuilder()
    for delta in deltas:
        builder.add(delta)
    assert builder.build() == await bot.answer([], "reset password")
    assert builder.build().finish_reason == "stop"


async def test_refusal_streams_too() -> None:
    bot = answerer({})
    deltas = [d async for d in bot.stream([], "nothing")]
    assert deltas[0].citations == [] and "".join(d.content for d in deltas) == REFUSAL


async def test_ready_and_close_reach_the_parts() -> None:
    bot = answerer({})
    assert await bot.ready() is None
    await bot.aclose()
    assert bot.retriever.closed  # type: ignore[attr-defined]
