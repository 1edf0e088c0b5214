"""Rendering of answers, failures and streams: numbering, per-channel shapes and the hard limits."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.render import (
    MAX_SOURCES,
    can_stream,
    cite,
    cite_partial,
    informative_text,
    render_error,
    render_reply,
    stream_chunk,
    stream_final,
    stream_informative,
)
from bot.render.entity import keywords
from bot.render.reply import ENVELOPE_BYTES, MESSAGE_LIMIT_BYTES, message_size
from rag.contract import REFUSAL, Answer, AnswerBuilder, AnswerDelta, Citation
from rag.errors import (
    AuthError,
    ContentFiltered,
    DataSourceError,
    NotReady,
    Throttled,
    UpstreamUnavailable,
)

MESSAGE = "https://schema.org/Message"
MARKER = re.compile(r"\[(\d+)\]")
REFERENCE = re.compile(r'^\[(\d+)\]: (\S+|<[^>]+>) "((?:[^"\\]|\\.)*)"$', re.MULTILINE)


def doc(n: int, **fields: Any) -> Citation:
    fields.setdefault("content", f"Passage number {n} explains topic {n} in a few words.")
    fields.setdefault("title", f"Document {n}")
    fields.setdefault("url", f"https://docs.example.com/{n}")
    return Citation(**fields)


def root_entity(activity: dict[str, Any]) -> dict[str, Any]:
    """Checks what Teams checks (one root entity, valid claims, markers <-> claims) and returns it."""
    json.loads(json.dumps(activity))
    roots = [entity for entity in activity["entities"] if entity.get("type") == MESSAGE]
    assert len(roots) == 1, "exactly one root Message entity"
    entity = roots[0]
    assert entity["@type"] == "Message" and entity["@context"] == "https://schema.org" and entity["@id"] == ""
    assert entity["additionalType"] == ["AIGeneratedContent"]
    claims = entity.get("citation", [])
    assert len(claims) <= 20
    positions = [claim["position"] for claim in claims]
    assert positions == list(range(1, len(claims) + 1))
    for claim in claims:
        assert claim["@type"] == "Claim"
        appearance = claim["appearance"]
        assert appearance["@type"] == "DigitalDocument"
        assert 0 < len(appearance["name"]) <= 80
        assert len(appearance.get("abstract", "")) <= 160
        assert len(appearance.get("keywords", [])) <= 3
        assert all(0 < len(keyword) <= 28 for keyword in appearance.get("keywords", []))
    body = activity["text"]
    if activity["channelData"].get("feedbackLoop") is None:  # Web Chat: definitions follow the body
        body = REFERENCE.sub("", body)
    assert {int(n) for n in MARKER.findall(body)} == set(positions), "every [n] has a claim and vice versa"
    return entity


# --- numbering -------------------------------------------------------------------------------------


def test_numbers_by_first_use_and_drops_uncited_and_dangling_markers() -> None:
    cited = cite(
        "B [doc3] then A [doc1], B again [doc3], ghost [doc7] and zero [doc0].", [doc(1), doc(2), doc(3)]
    )
    assert cited.text == "B [1] then A [2], B again [1], ghost and zero."
    assert [(s.position, s.citation.title) for s in cited.sources] == [(1, "Document 3"), (2, "Document 1")]


def test_merges_same_url_or_filepath_and_collapses_repeated_markers() -> None:
    citations = [
        doc(1, url="https://docs.example.com/vpn"),
        doc(2, url="https://docs.example.com/vpn", title="VPN, part 2"),
        doc(3, url=None, filepath="it/mfa.md"),
        doc(4, url=None, filepath="it/mfa.md"),
        doc(5, url=None, filepath=None, title="Loose note"),
    ]
    cited = cite("VPN [doc1][doc2]. MFA [doc4] [doc3]. Note [doc5].", citations)
    assert cited.text == "VPN [1]. MFA [2]. Note [3]."
    assert [s.citation.title for s in cited.sources] == ["Document 1", "Document 4", "Loose note"]


def test_more_than_twenty_sources_keep_the_first_twenty_everywhere() -> None:
    citations = [doc(n) for n in range(1, 26)]
    content = " ".join(f"Fact {n} [doc{n}]." for n in range(1, 26))
    answer = Answer(content=content, citations=citations)
    teams = render_reply(answer, "msteams", "personal")
    assert len(root_entity(teams)["citation"]) == MAX_SOURCES == 20
    assert "[21]" not in teams["text"] and "Fact 25." in teams["text"]
    plain = render_reply(answer, "emulator", None)
    assert plain["text"].count("\n- [") == 20


# --- channels ---------------------------------------------------------------------------------------


ANSWER = Answer(
    content="Expenses over 500 EUR need approval [doc2]. Upload receipts within 30 days [doc1].",
    citations=[
        doc(1, title="Receipts FAQ", url="https://intranet.example.com/finance/receipts"),
        doc(
            2,
            title=None,
            url=None,
            filepath="finance/policies/expenses.pdf",
            page=4,
            content="# Approval\nAny expense above 500 EUR must be approved by the line manager.",
        ),
        doc(3, title="Never cited"),
    ],
    intent=["expense approval limit", "receipt deadline"],
)


def test_teams_reply_has_markers_one_entity_and_feedback() -> None:
    reply = render_reply(ANSWER, "msteams", "personal")
    assert reply["type"] == "message" and reply["textFormat"] == "markdown"
    assert reply["channelData"] == {"feedbackLoop": {"type": "default"}}
    assert reply["text"].startswith(
        "Expenses over 500 EUR need approval [1]. Upload receipts within 30 days [2]."
    )
    assert "Searched for: expense approval limit; receipt deadline" in reply["text"]
    assert "]: " not in reply["text"], "no reference definitions in Teams"
    first, second = root_entity(reply)["citation"]
    assert first["appearance"] == {
        "@type": "DigitalDocument",
        "name": "expenses.pdf",
        "abstract": "Approval Any expense above 500 EUR must be approved by the line manager.",
        "keywords": ["page 4", "policies", "finance"],
        "image": {"@type": "ImageObject", "name": "PDF"},
    }
    assert second["appearance"]["url"] == "https://intranet.example.com/finance/receipts"
    assert "Never cited" not in json.dumps(reply)


@pytest.mark.parametrize("channel", ["webchat", "directline", "DirectLine"])
def test_web_chat_reply_has_reference_definitions_and_the_entity(channel: str) -> None:
    reply = render_reply(ANSWER, channel, None)
    definitions = REFERENCE.findall(reply["text"])
    assert definitions == [
        ("1", "cite:1", "expenses.pdf"),
        ("2", "https://intranet.example.com/finance/receipts", "Receipts FAQ"),
    ]
    claims = root_entity(reply)["citation"]
    assert claims[0]["appearance"]["text"].startswith("# Approval\nAny expense above 500 EUR")
    assert claims[0]["appearance"]["encodingFormat"] == "text/markdown"
    assert "url" not in claims[0]["appearance"]
    assert "feedbackLoop" not in reply["channelData"]


def test_reference_definitions_quote_titles_and_bracket_urls_with_blanks() -> None:
    answer = Answer(
        content="See [doc1].",
        citations=[doc(1, title='The "new" \\ policy', url="https://x.example.com/a b (draft).pdf")],
    )
    text = render_reply(answer, "webchat", None)["text"]
    assert '[1]: <https://x.example.com/a b (draft).pdf> "The \\"new\\" \\\\ policy"' in text.splitlines()


@pytest.mark.parametrize("channel", ["emulator", "slack", "telegram"])
def test_other_channels_get_a_sources_list_and_no_entity(channel: str) -> None:
    reply = render_reply(ANSWER, channel, None)
    assert reply["entities"] == [] and reply["channelData"] == {}
    assert reply["text"].endswith(
        "Sources:\n- [1] expenses.pdf — finance/policies/expenses.pdf#page=4\n"
        "- [2] Receipts FAQ — https://intranet.example.com/finance/receipts"
    )


def test_intent_line_can_be_turned_off_and_is_escaped() -> None:
    assert "Searched for" not in render_reply(ANSWER, "msteams", "personal", show_intent=False)["text"]
    answer = ANSWER.model_copy(update={"intent": ["*bold* [x]_y"]})
    assert "Searched for: \\*bold\\* \\[x\\]\\_y" in render_reply(answer, "emulator", None)["text"]
    assert (
        "Searched for" not in render_reply(ANSWER.model_copy(update={"intent": []}), "msteams", None)["text"]
    )


def test_links_and_icons_follow_the_file_type() -> None:
    cases = [
        (
            doc(1, url="https://x.example.com/guide.pdf", page=2),
            "https://x.example.com/guide.pdf#page=2",
            "PDF",
        ),
        (
            doc(1, url="https://x.example.com/guide.pdf#page=9", page=2),
            "https://x.example.com/guide.pdf#page=9",
            "PDF",
        ),
        (doc(1, url=None, filepath="hr/leave.pdf", page=3), "hr/leave.pdf#page=3", "PDF"),
        (doc(1, url=None, filepath="hr/leave.pdf"), None, "PDF"),
        (doc(1, url=None, filepath="hr\\Leave Policy.DOCX", page=3), None, "Microsoft Word"),
        (doc(1, url=None, filepath="it/vpn.md"), None, "Text"),
        (doc(1, url="https://contoso.sharepoint.com/sites/hr/Pages/leave"), None, "Microsoft SharePoint"),
    ]
    for citation, link, icon in cases:
        source = cite("x [doc1]", [citation]).sources[0]
        assert (source.link or None, source.icon) == (link or citation.url, icon), citation
    nameless = cite("x [doc1]", [doc(1, title="  ", url=None, filepath="hr\\Leave Policy.DOCX")]).sources[0]
    assert nameless.name == "Leave Policy.DOCX"
    assert cite("x [doc1]", [doc(1, title=None, url=None)]).sources[0].name == "Source 1"


# --- limits -----------------------------------------------------------------------------------------


def test_long_names_abstracts_and_keywords_are_cut_at_a_word() -> None:
    words = " ".join(["governance"] * 40)
    answer = Answer(
        content="Rules [doc1].",
        citations=[
            doc(
                1,
                title=f"Annual {words}",
                content=words,
                url=None,
                filepath="a-very-long-folder-name-that-goes-on/b/c/d/policy.pdf",
                page=12,
            )
        ],
    )
    appearance = root_entity(render_reply(answer, "msteams", "personal"))["citation"][0]["appearance"]
    assert len(appearance["name"]) <= 80 and appearance["name"].endswith("governance…")
    assert len(appearance["abstract"]) <= 160 and appearance["abstract"].endswith("governance…")
    assert appearance["keywords"] == ["page 12", "d", "c"]
    one_long_word = root_entity(
        render_reply(answer.model_copy(update={"citations": [doc(1, content="x" * 500)]}), "msteams", None)
    )["citation"][0]["appearance"]["abstract"]
    assert len(one_long_word) == 160 and one_long_word.endswith("x…")
    folder = cite("x [doc1]", [doc(1, filepath="a-very-long-folder-name-that-goes-on/p.pdf")]).sources[0]
    assert keywords(folder.keywords) == ["a-very-long-folder-name-tha…"]
    assert keywords(["a", "", "a", "b", "c", "d"]) == ["a", "b", "c"]


def _limit_ok(activity: dict[str, Any]) -> bool:
    return message_size(activity) + ENVELOPE_BYTES <= MESSAGE_LIMIT_BYTES


def test_big_sources_lose_abstracts_first_then_sources_but_keep_the_text() -> None:
    citations = [
        doc(
            n,
            title=f"Policy {n} " + "w" * 70,
            url=f"https://docs.example.com/{n}/" + "p" * 900,
            content="é " * 300,
        )
        for n in range(1, 21)
    ]
    text = " ".join(f"Statement {n} [doc{n}]." for n in range(1, 21))
    for channel in ("msteams", "webchat"):
        reply = render_reply(Answer(content=text, citations=citations), channel, "personal")
        assert _limit_ok(reply)
        claims = root_entity(reply)["citation"]
        assert 0 < len(claims) < 20, "some sources had to go"
        assert all("abstract" not in claim["appearance"] for claim in claims)
        assert "Statement 20." in reply["text"], "the answer text stays whole"
    small = render_reply(
        Answer(content=text, citations=citations[:3] + [doc(n) for n in range(4, 21)]), "msteams", None
    )
    assert all("abstract" in claim["appearance"] for claim in root_entity(small)["citation"])


def test_huge_text_is_cut_last_and_stays_consistent_with_its_claims() -> None:
    paragraph = "A sentence about leave policies with ünïcödé and emoji 😀 in it. " * 40
    content = "\n\n".join(f"{paragraph}[doc{n}]" for n in range(1, 21))
    answer = Answer(content=content, citations=[doc(n) for n in range(1, 21)], intent=["leave"])
    for channel in ("msteams", "webchat", "slack"):
        reply = render_reply(answer, channel, "personal")
        assert _limit_ok(reply)
        assert message_size(reply) > MESSAGE_LIMIT_BYTES - ENVELOPE_BYTES - 2048, "cut no more than needed"
        assert "…" in reply["text"]
        if channel != "slack":
            assert 0 < len(root_entity(reply)["citation"]) < 20


# --- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ContentFiltered("prompt", {"hate": "high"}), "your message was blocked by the content filter"),
        (ContentFiltered("completion", {"violence": True}), "answer: it was blocked by the content filter"),
        (Throttled(12.2), "try again in 13 s"),
        (Throttled(0), "try again in 1 s"),
        (NotReady("index missing"), "not ready yet"),
        (DataSourceError("no index"), "can't search the knowledge base"),
        (AuthError("401"), "refused my credentials"),
        (UpstreamUnavailable("timeout"), "unavailable right now"),
        (RuntimeError("boom"), "something went wrong"),
    ],
)
def test_failures_get_specific_friendly_text(error: Exception, expected: str) -> None:
    for channel in ("msteams", "webchat", "emulator"):
        reply = render_error(error, channel)
        assert expected in reply["text"]
        assert reply["type"] == "message" and reply["entities"] == []
        assert str(error) not in reply["text"] or not str(error)


def test_refusal_and_filtered_or_empty_answers() -> None:
    refusal = render_reply(Answer(content=REFUSAL, intent=["parking rules"]), "msteams", "personal")
    assert refusal["text"].startswith("I couldn't find that in the knowledge base.")
    assert "Searched for: parking rules" in refusal["text"] and REFUSAL not in refusal["text"]
    assert refusal["entities"] == [] and refusal["channelData"] == {"feedbackLoop": {"type": "default"}}
    filtered = render_reply(
        Answer(content="Partial [doc1]", citations=[doc(1)], finish_reason="content_filter"), "webchat", None
    )
    assert "content filter" in filtered["text"] and filtered["entities"] == []
    empty = render_reply(Answer(content=" [doc4] ", citations=[doc(1)]), "emulator", None)
    assert empty["text"] == "I couldn't put an answer together this time. Please try again."


# --- streaming --------------------------------------------------------------------------------------


def test_stream_activities_follow_the_teams_and_web_chat_protocol() -> None:
    first = stream_informative(informative_text(["vpn setup"]), 1)
    assert first == {
        "type": "typing",
        "text": "Searching for: vpn setup…",
        "entities": [{"type": "streaminfo", "streamType": "informative", "streamSequence": 1}],
        "channelData": {"streamType": "informative", "streamSequence": 1},
    }
    chunk = stream_chunk("Connect with [1]", 2, "1736412399001")
    assert chunk["entities"] == [
        {"type": "streaminfo", "streamType": "streaming", "streamSequence": 2, "streamId": "1736412399001"}
    ]
    assert {k: v for k, v in chunk["entities"][0].items() if k != "type"} == chunk["channelData"]
    final = stream_final(render_reply(ANSWER, "msteams", "personal"), "1736412399001")
    assert final["type"] == "message"
    assert final["entities"][0] == {"type": "streaminfo", "streamType": "final", "streamId": "1736412399001"}
    assert final["channelData"] == {
        "feedbackLoop": {"type": "default"},
        "streamType": "final",
        "streamId": "1736412399001",
    }
    assert "streamSequence" not in json.dumps(final)
    root_entity(final)
    errored = stream_final(render_error(Throttled(3), "webchat"), "abc")
    assert errored["type"] == "message" and errored["channelData"]["streamType"] == "final"
    assert informative_text([]) == "Searching the knowledge base…"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: stream_chunk("text", 0), "starts at 1"),
        (lambda: stream_chunk("  ", 1), "needs text"),
        (lambda: stream_chunk("text", 2), "stream id"),
        (lambda: stream_final({"type": "message"}, ""), "stream id"),
    ],
)
def test_stream_misuse_is_refused(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_can_stream_only_where_the_channel_supports_it() -> None:
    assert (
        can_stream("msteams", "personal") and can_stream("webchat", None) and can_stream("directline", None)
    )
    assert not can_stream("msteams", "groupChat") and not can_stream("msteams", "channel")
    assert not can_stream("emulator", None) and not can_stream("slack", None)


def test_partial_text_waits_for_citations_and_for_whole_markers() -> None:
    assert cite_partial("Use the VPN [doc2] client", None) == "Use the VPN"
    assert cite_partial("Use the VPN [do", [doc(1), doc(2)]) == "Use the VPN"
    assert cite_partial("Use the VPN [doc2] client [doc1", [doc(1), doc(2)]) == "Use the VPN [1] client"


TOKENS = st.sampled_from(
    ["VPN", " ", "\n", ".", "é", "[", "]", "[doc1]", "[doc2]", "[doc3]", "[doc9]", "[x]", "doc"]
)


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.lists(TOKENS, max_size=4).map("".join), max_size=30),
    same_url=st.booleans(),
    citations_after=st.integers(min_value=0, max_value=30),
)
def test_streamed_text_only_grows_and_matches_the_final_numbering(
    pieces: list[str], same_url: bool, citations_after: int
) -> None:
    citations = [doc(1), doc(2, url="https://docs.example.com/1" if same_url else None), doc(3)]
    builder = AnswerBuilder()
    sent: list[str] = []
    for index, piece in enumerate(pieces):
        builder.add(AnswerDelta(content=piece, citations=citations if index == citations_after else None))
        known = builder.answer.citations if index >= citations_after else None
        text = cite_partial(builder.text, known)
        if sent:
            assert text.startswith(sent[-1]), (sent[-1], text)
        sent.append(text)
    answer = builder.build().model_copy(update={"citations": citations, "intent": []})
    final = render_reply(answer, "msteams", "personal")
    if sent and sent[-1]:
        assert final["text"].startswith(sent[-1])
        root_entity(final)


def test_web_chat_excerpts_of_sources_without_urls_shrink_to_fit() -> None:
    citations = [
        doc(n, url=None, filepath=f"kb/note-{n}.md", content=f"Line {n}. " + "word " * 900)
        for n in range(1, 21)
    ]
    answer = Answer(content=" ".join(f"Fact {n} [doc{n}]." for n in range(1, 21)), citations=citations)
    reply = render_reply(answer, "webchat", None)
    assert _limit_ok(reply)
    claims = root_entity(reply)["citation"]
    assert len(claims) == 20, "shorter excerpts made room for every source"
    assert all(claim["appearance"]["text"].startswith(f"Line {claim['position']}.") for claim in claims)
    assert all(len(claim["appearance"]["text"]) <= 160 for claim in claims)
    assert REFERENCE.findall(reply["text"])[0] == ("1", "cite:1", "Document 1")
