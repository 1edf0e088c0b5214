"""Who may see what, from the files to the answers: one folder of public and restricted documents (front
matter and `<meta>`) indexed by the real pipeline into both targets, the local store and a loopback Azure
AI Search, then asked through the public Answerer API by each kind of asker on every backend: local,
grounded on the Azure AI Search index, grounded on a knowledge base over it (`filterAddOn`), and On Your
Data (whose fake service applies the data source's `filter` to the same indexed documents). Each asker
gets exactly the documents `Asker.may_see` allows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from search_fake import FakeSearch

from indexing.chunking import Chunker
from indexing.factory import azure_setup
from indexing.knowledge_base import plan, publish
from indexing.pipeline import Indexer, IndexSummary
from indexing.targets import LocalTarget
from rag.contract import Answerer, Asker
from rag.factory import build_answerer
from rag.local.embedder import DIMENSIONS, MODEL_NAME, LocalEmbedder
from rag.settings import Settings
from tests.azure.azure_fake import FakeAzure, Reply
from tests.loopback import serve
from tests.odata_filter import compile_filter

Make = Callable[[dict[str, str]], Settings]
CHUNKER = Chunker(200, 20)
FILES = {
    "kb/password.md": "---\ntitle: Reset your password\n---\n\nOpen the self-service portal to reset it.\n",
    "hr/salary-bands.md": (
        "---\ntitle: Salary bands\ngroups: [hr-staff]\n---\n\nGrade G3 pays 37,000 to 51,000 a year.\n"
    ),
    "exec/board-notes.md": (
        "---\ntitle: Board notes\nusers: [oid-ceo]\n---\n\nThe board meets on the first Monday.\n"
    ),
    "audit/findings.html": (
        "<html><head><title>Audit findings</title><meta name='groups' content='audit'>"
        "<meta name='oids' content='oid-ceo'></head><body><main><h1>Audit findings</h1>"
        "<p>Two findings on expense approvals remain open.</p></main></body></html>"
    ),
}
PUBLIC = {"kb/password.md"}
ASKERS: dict[str, tuple[Asker | None, set[str]]] = {
    "anonymous": (None, PUBLIC),
    "a web chat user nobody identified": (Asker(user_id="dl_123"), PUBLIC),
    "a member of hr-staff": (
        Asker(aad_object_id="oid-hr", groups=["hr-staff"]),
        PUBLIC | {"hr/salary-bands.md"},
    ),
    "a user named by two documents": (
        Asker(aad_object_id="oid-ceo", groups=["leadership"]),
        PUBLIC | {"exec/board-notes.md", "audit/findings.html"},
    ),
    "a member of audit": (
        Asker(aad_object_id="oid-a", groups=["audit", "it"]),
        PUBLIC | {"audit/findings.html"},
    ),
    "a member of other groups": (Asker(aad_object_id="oid-it", groups=["it", "oid-ceo"]), PUBLIC),
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def azure_env(search: FakeSearch, **extra: str) -> dict[str, str]:
    return {
        "AZURE_SEARCH_ENDPOINT": search.url,
        "AZURE_SEARCH_KEY": search.api_key,
        "AZURE_SEARCH_INDEX": "kb",
        "AZURE_SEARCH_PERMITTED_GROUPS_COLUMN": "groups",
        "AZURE_SEARCH_PERMITTED_USERS_COLUMN": "oids",
        "AZURE_SEARCH_QUERY_TYPE": "simple",
        "AZURE_SEARCH_STRICTNESS": "1",
        "AZURE_SEARCH_TOP_K": "10",
        **extra,
    }


async def index_into_search(settings: Settings, folder: Path) -> IndexSummary:
    """`folder` through the real pipeline into the loopback Azure AI Search (its client closed after)."""
    setup = azure_setup(settings, retry_base=0.01)
    try:
        return await Indexer(setup.target, setup.embedder, CHUNKER).run([folder])
    finally:
        await setup.target.aclose()


async def seen_by_each(answerer: Answerer, question: str) -> dict[str, set[str]]:
    """The files each asker's answer to `question` cites."""
    found: dict[str, set[str]] = {}
    try:
        for name, (asker, _) in ASKERS.items():
            answer = await answerer.answer([], question, asker)
            found[name] = {c.filepath or "" for c in answer.citations}
    finally:
        await answerer.aclose()
    return found


async def test_the_local_backend_shows_each_asker_their_documents(
    folder: Path, make_settings: Make, tmp_path: Path
) -> None:
    settings = make_settings({"RAGBOT_BACKEND": "local", "RAGBOT_DATA_DIR": str(tmp_path / "data")})
    target = LocalTarget(settings.ragbot.local_index_path, dimensions=DIMENSIONS, embedder_name=MODEL_NAME)
    try:
        summary = await Indexer(target, LocalEmbedder(), CHUNKER).run([folder])
    finally:
        await target.aclose()
    assert summary.errors == [] and summary.files_indexed == len(FILES)
    answerer = build_answerer(settings)
    retriever = answerer.retriever  # type: ignore[attr-defined]
    for name, (asker, expected) in ASKERS.items():  # every document it may see, and no other
        hits = await retriever.retrieve("portal grade board findings", top=50, asker=asker)
        assert {h.chunk.filepath for h in hits} == expected, name
    questions = {
        "hr/salary-bands.md": "what does grade G3 pay",
        "exec/board-notes.md": "when does the board meet",
        "audit/findings.html": "which audit findings remain open",
    }
    for restricted, question in questions.items():
        found = await seen_by_each(build_answerer(settings), question)
        for name, (_, expected) in ASKERS.items():
            assert (restricted in found[name]) == (restricted in expected), (name, question, found[name])
    await answerer.aclose()


async def test_azure_ai_search_shows_each_asker_their_documents(
    folder: Path, make_settings: Make, search: FakeSearch
) -> None:
    indexing = make_settings(azure_env(search))
    summary = await index_into_search(indexing, folder)
    assert summary.errors == [] and summary.files_indexed == len(FILES)
    stored = {d["filepath"]: (d["groups"], d["oids"]) for d in search.docs().values()}
    assert stored == {
        "kb/password.md": ([], []),
        "hr/salary-bands.md": (["hr-staff"], []),
        "exec/board-notes.md": ([], ["oid-ceo"]),
        "audit/findings.html": (["audit"], ["oid-ceo"]),
    }
    settings = make_settings({"RAGBOT_BACKEND": "grounded", "RAGBOT_GENERATOR": "extractive"})
    indexed = len(search.requests)
    found = await seen_by_each(build_answerer(settings), "what is there")
    assert found == {name: expected for name, (_, expected) in ASKERS.items()}
    filters = [r.body["filter"] for r in search.requests[indexed:] if r.path.endswith("search.post.search")]
    assert filters[0] == "(not groups/any() and not oids/any())"  # anonymous: public documents only
    assert filters[2] == (
        "(not groups/any() and not oids/any()) or groups/any(g: search.in(g, 'hr-staff', ',')) "
        "or oids/any(u: search.in(u, 'oid-hr', ','))"
    )


async def test_on_your_data_sends_each_asker_their_filter(
    folder: Path, make_settings: Make, search: FakeSearch
) -> None:
    """On Your Data searches on the service side: the fake applies the data source's filter to the
    documents the indexer wrote, as Azure AI Search would, and cites what passes."""
    await index_into_search(make_settings(azure_env(search)), folder)
    documents = list(search.docs().values())

    def respond(body: Any) -> Reply:
        parameters = body["data_sources"][0]["parameters"]
        passes = compile_filter(parameters["filter"])
        citations = [
            {"content": d["content"], "title": d["title"], "filepath": d["filepath"]}
            for d in documents
            if passes(d)
        ]
        message = {"role": "assistant", "content": "Here [doc1].", "context": {"citations": citations}}
        return Reply(body={"choices": [{"index": 0, "finish_reason": "stop", "message": message}]})

    openai = FakeAzure()
    openai.respond = respond
    async with serve(openai.handle, method="POST") as openai.url:
        settings = make_settings(
            {
                "RAGBOT_BACKEND": "on_your_data",
                "AZURE_OPENAI_ENDPOINT": openai.url,
                "AZURE_OPENAI_KEY": "aoai-key",
                "AZURE_OPENAI_MODEL": "gpt-4o",
            }
        )
        found = await seen_by_each(build_answerer(settings), "what is there")
    assert found == {name: expected for name, (_, expected) in ASKERS.items()}
    sent = [r.body["data_sources"][0]["parameters"]["filter"] for r in openai.requests]
    assert sent[0] == sent[1] == "(not groups/any() and not oids/any())"


async def test_a_knowledge_base_shows_each_asker_their_documents(
    folder: Path, make_settings: Make, search: FakeSearch
) -> None:
    """The knowledge base's retrieve applies `filterAddOn` as the index search applies `filter`."""
    settings = make_settings(azure_env(search))
    await index_into_search(settings, folder)
    await publish(settings, *plan(settings, "kb-agentic"))
    answering = make_settings(
        {
            "RAGBOT_BACKEND": "grounded",
            "RAGBOT_GENERATOR": "extractive",
            "AZURE_SEARCH_KNOWLEDGE_BASE": "kb-agentic",
        }
    )
    before = len(search.requests)
    found = await seen_by_each(build_answerer(answering), "what is there")
    assert found == {name: expected for name, (_, expected) in ASKERS.items()}
    sent = [r.body for r in search.requests[before:] if r.path.endswith("/retrieve")]
    (anonymous,) = sent[0]["knowledgeSourceParams"]
    assert anonymous["filterAddOn"] == "(not groups/any() and not oids/any())"


async def test_an_azure_index_without_a_field_for_an_access_list_refuses_the_file(
    folder: Path, make_settings: Make, search: FakeSearch
) -> None:
    """A file naming users cannot go into an index without a users field: it would be everyone's."""
    settings = make_settings({**azure_env(search), "AZURE_SEARCH_PERMITTED_USERS_COLUMN": ""})
    summary = await index_into_search(settings, folder)
    refused = {error.path: error.reason for error in summary.errors}
    assert set(refused) == {str(folder / "exec/board-notes.md"), str(folder / "audit/findings.html")}
    assert all("AZURE_SEARCH_PERMITTED_USERS_COLUMN is unset" in reason for reason in refused.values())
    assert {d["filepath"] for d in search.docs().values()} == {"kb/password.md", "hr/salary-bands.md"}
