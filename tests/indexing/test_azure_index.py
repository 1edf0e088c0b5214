"""Indexing into Azure AI Search: the real azure-search-documents client against a loopback service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from search_fake import FakeSearch, fake_vector

from indexing.azure_schema import build_index
from indexing.azure_target import Action, AzureSearchTarget
from indexing.chunking import Chunker
from indexing.factory import azure_setup, build_setup, default_target
from indexing.loaders import load
from indexing.pipeline import Indexer, IndexSummary, PruneRefused, embedding_text, make_chunks
from indexing.sources import SourceFile, content_hash
from rag.azure.data_source import AzureSearchSource, data_source
from rag.azure.dialects import dialect
from rag.documents import Chunk
from rag.errors import AuthError, ConfigError
from rag.index_spec import IndexSpec
from rag.settings import Settings

Make = Callable[[dict[str, str]], Settings]
DIMS = 8
CHUNKER = Chunker(128, 16)  # small chunks, so the test documents are cut into several


def real(path: Path) -> str:
    """The absolute path the index records as a root."""
    return str(path.resolve())


def env(search: FakeSearch, **extra: str) -> dict[str, str]:
    return {
        "AZURE_SEARCH_ENDPOINT": search.url,
        "AZURE_SEARCH_KEY": search.api_key,
        "AZURE_SEARCH_INDEX": "kb",
        "AZURE_SEARCH_SEMANTIC_SEARCH_CONFIG": "kb-semantic",
        "AZURE_SEARCH_PERMITTED_GROUPS_COLUMN": "group_ids",
        "AZURE_SEARCH_PERMITTED_USERS_COLUMN": "oids",
        "AZURE_OPENAI_ENDPOINT": search.url,
        "AZURE_OPENAI_KEY": "aoai-key",
        "AZURE_OPENAI_MODEL": "gpt-4o",
        "AZURE_OPENAI_EMBEDDING_NAME": "text-embedding-3-small",
        "AZURE_OPENAI_EMBEDDING_DIMENSIONS": str(DIMS),
        **extra,
    }


async def index(
    settings: Settings,
    root: Path,
    *,
    recreate: bool = False,
    dry_run: bool = False,
    prune: bool = False,
    **target: Any,
) -> IndexSummary:
    setup = azure_setup(settings, retry_base=0.01, **target)
    indexer = Indexer(setup.target, setup.embedder, CHUNKER, embed_concurrency=2)
    try:
        return await indexer.run([root], recreate=recreate, dry_run=dry_run, prune=prune)
    finally:
        await setup.target.aclose()
        assert setup.embedder is not None
        await setup.embedder.aclose()  # type: ignore[attr-defined]


def expected_chunks(root: Path, filepath: str) -> list[Chunk]:
    path = root / filepath
    data = path.read_bytes()
    return make_chunks(load(data, path), SourceFile(path, filepath), content_hash(data), CHUNKER)


def by_file(search: FakeSearch) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for key, doc in search.docs().items():
        out.setdefault(doc["filepath"], set()).add(key)
    return out


async def test_index_is_created_from_the_spec_and_documents_uploaded(
    search: FakeSearch, make_settings: Make, kb: Path
) -> None:
    summary = await index(make_settings(env(search)), kb, batch_docs=2)

    assert summary.files_failed == 0, summary.errors
    assert (summary.files_seen, summary.files_indexed, summary.files_unsupported) == (7, 5, 2)
    put = next(r for r in search.requests if r.method == "PUT")
    assert put.path == "/indexes('kb')"
    assert all(
        r.headers.get("api-key") == search.api_key for r in search.requests if "/openai/" not in r.path
    )
    fields = {f["name"]: f for f in put.body["fields"]}
    assert fields["id"]["key"] is True
    assert fields["content"]["searchable"] is True and fields["title"]["searchable"] is True
    assert fields["filepath"]["filterable"] is True and fields["chunk_id"]["filterable"] is True
    for name in ("group_ids", "oids"):
        assert fields[name] == {**fields[name], "type": "Collection(Edm.String)", "filterable": True}
    assert {"url", "page", "last_modified", "content_hash"} <= set(fields)
    vector = fields["contentVector"]
    assert (vector["type"], vector["dimensions"]) == ("Collection(Edm.Single)", DIMS)
    profile = next(
        p for p in put.body["vectorSearch"]["profiles"] if p["name"] == vector["vectorSearchProfile"]
    )
    assert profile["algorithm"] in {a["name"] for a in put.body["vectorSearch"]["algorithms"]}
    (vectorizer,) = put.body["vectorSearch"]["vectorizers"]
    assert vectorizer["name"] == profile["vectorizer"]
    assert vectorizer["kind"] == "azureOpenAI"
    assert vectorizer["azureOpenAIParameters"] == {
        "resourceUri": search.url,
        "deploymentId": "text-embedding-3-small",
        "modelName": "text-embedding-3-small",
        "apiKey": "aoai-key",
    }
    assert put.body["semantic"]["configurations"][0]["name"] == "kb-semantic"

    docs = search.docs()
    assert len(docs) == summary.chunks_added > 5
    assert all(len(batch) <= 2 for batch in search.batches())
    vpn = sorted((d for d in docs.values() if d["filepath"] == "it/vpn.md"), key=lambda d: int(d["chunk_id"]))
    assert len(vpn) >= 2, "the long VPN section must be cut"
    assert vpn[0]["title"] == "Connect to the VPN" and vpn[0]["url"] == "https://kb.example/it/vpn"
    assert vpn[0]["group_ids"] == ["staff", "contractors"] and vpn[0]["oids"] == ["oid-alex"]
    assert all(d["group_ids"] == d["oids"] == [] for d in docs.values() if d["filepath"] != "it/vpn.md")
    assert vpn[0]["last_modified"] == "2025-03-12T00:00:00Z"
    assert vpn[0]["content_hash"] == content_hash((kb / "it/vpn.md").read_bytes())
    pdf = [d for d in docs.values() if d["filepath"] == "hr/expenses.pdf"]
    assert sorted(d["page"] for d in pdf) == [1, 2]
    chunk = next(c for c in expected_chunks(kb, "it/vpn.md") if c.chunk_id == "1")
    assert np.allclose(docs[chunk.id]["contentVector"], fake_vector(embedding_text(chunk), DIMS), atol=1e-6)

    # each file's first chunk (which carries the file's hash) is sent after all its other chunks
    position = {doc["id"]: n for n, batch in enumerate(search.batches()) for doc in batch}
    for doc in vpn[1:]:
        assert position[doc["id"]] < position[vpn[0]["id"]]


async def test_second_run_on_an_unchanged_folder_writes_nothing(
    search: FakeSearch, make_settings: Make, kb: Path
) -> None:
    settings = make_settings(env(search))
    await index(settings, kb)
    before = len(search.requests)
    summary = await index(settings, kb)

    assert (summary.chunks_added, summary.chunks_updated, summary.chunks_deleted) == (0, 0, 0)
    assert summary.files_unchanged == 5 and summary.files_skipped == 7
    later = search.requests[before:]
    assert not [r for r in later if r.path.endswith("search.index") or "/openai/" in r.path]
    # the hashes come from one filtered listing of every file's first chunk
    listing = [r.body for r in later if r.path.endswith("search.post.search")]
    assert listing == [
        {
            "search": "*",
            "filter": "chunk_id eq '0'",
            "orderby": "filepath asc",
            "select": "id,filepath,content_hash,source_root",
            "top": 1000,
        }
    ]


async def test_listing_pages_past_the_page_size(search: FakeSearch, make_settings: Make, kb: Path) -> None:
    settings = make_settings(env(search))
    await index(settings, kb)
    before = len(search.requests)
    summary = await index(settings, kb, page_size=2)

    assert summary.files_unchanged == 5 and summary.files_indexed == 0
    filters = [r.body["filter"] for r in search.requests[before:] if r.path.endswith("search.post.search")]
    assert filters == [
        "chunk_id eq '0'",
        "(chunk_id eq '0') and filepath gt 'hr/holidays.html'",
        "(chunk_id eq '0') and filepath gt 'it/printers.txt'",
    ]


async def test_changed_file_replaces_its_chunks_and_deleted_file_is_removed(
    search: FakeSearch, make_settings: Make, kb: Path
) -> None:
    settings = make_settings(env(search))
    await index(settings, kb)
    old_vpn = by_file(search)["it/vpn.md"]
    assert len(old_vpn) >= 2
    (kb / "it" / "vpn.md").write_text("---\ntitle: Connect to the VPN\n---\n\nThe VPN is retired.\n")
    (kb / "hr" / "holidays.html").unlink()

    summary = await index(settings, kb)

    files = by_file(search)
    assert files["it/vpn.md"] == {c.id for c in expected_chunks(kb, "it/vpn.md")}
    assert len(files["it/vpn.md"]) == 1 and not files["it/vpn.md"] & old_vpn
    assert "hr/holidays.html" not in files
    assert summary.files_deleted == 1 and summary.files_indexed == 1
    assert summary.chunks_added == 1 and summary.chunks_deleted == len(old_vpn) + 1
    deletes = [d for batch in search.batches() for d in batch if d["@search.action"] == "delete"]
    assert {d["id"] for d in deletes} >= old_vpn


async def test_a_sub_folder_updates_only_its_files_and_removing_most_of_the_index_needs_prune(
    search: FakeSearch, make_settings: Make, kb: Path, tmp_path: Path
) -> None:
    settings = make_settings(env(search))
    await index(settings, kb)
    before = by_file(search)
    (kb / "it" / "printers.txt").write_text("Printers\n\nUse the FollowMe queue. Stuck? Call 4040.\n")
    sub = await index(settings, kb / "it")
    assert (sub.files_indexed, sub.files_unchanged, sub.files_deleted) == (1, 2, 0)
    assert set(by_file(search)) == set(before)  # it/printers.txt updated under its name, hr/ kept
    (tmp_path / "empty").mkdir()
    assert (await index(settings, tmp_path / "empty")).files_deleted == 0
    roots = {doc["filepath"]: doc["source_root"] for doc in search.docs().values()}
    assert set(roots.values()) == {real(kb)}

    for name in ("vpn.md", "printers.txt", "laptops.docx"):
        (kb / "it" / name).unlink()
    kept = by_file(search)
    with pytest.raises(PruneRefused, match="would remove 3 of the 5 files"):
        await index(settings, kb)
    assert by_file(search) == kept
    pruned = await index(settings, kb, prune=True)
    assert pruned.files_deleted == 3 and set(by_file(search)) == {"hr/holidays.html", "hr/expenses.pdf"}


async def test_an_index_without_source_roots_learns_them_without_uploading_again(
    search: FakeSearch, make_settings: Make, kb: Path
) -> None:
    settings = make_settings(env(search))
    await index(settings, kb)
    for doc in search.docs().values():
        del doc["source_root"]  # as written before the field existed
    before = len(search.requests)
    sub = await index(settings, kb / "it")
    assert (sub.files_unchanged, sub.files_indexed, sub.files_deleted) == (3, 0, 0)
    batches = [r.body for r in search.requests[before:] if r.path.endswith("search.index")]
    assert [a["@search.action"] for batch in batches for a in batch["value"]] == ["merge"] * 3
    first_chunks = [doc for doc in search.docs().values() if doc["chunk_id"] == "0"]
    assert {doc["filepath"]: doc.get("source_root") for doc in first_chunks} == {
        "it/vpn.md": real(kb),
        "it/printers.txt": real(kb),
        "it/laptops.docx": real(kb),
        "hr/holidays.html": None,
        "hr/expenses.pdf": None,
    }


async def test_throttled_requests_and_documents_are_retried(
    search: FakeSearch, make_settings: Make, kb: Path
) -> None:
    chunk = expected_chunks(kb, "it/printers.txt")[0]
    search.request_faults = [503, 429]
    search.document_faults = {chunk.id: [503]}

    summary = await index(make_settings(env(search)), kb)

    assert summary.files_failed == 0, summary.errors
    assert search.request_faults == [] and len(search.docs()) == summary.chunks_added
    ids = [[d["id"] for d in batch] for batch in search.batches()]
    assert ids[0] == ids[1] == ids[2], "a request refused with 503 then 429 is sent again whole"
    attempts = [batch for batch in ids if chunk.id in batch]
    assert len(attempts) == 2 and len(attempts[0]) > 1
    assert attempts[1] == [chunk.id], "only the document answered 503 is sent again"


async def test_rejected_document_fails_its_file_and_is_redone_next_run(
    search: FakeSearch, make_settings: Make, kb: Path
) -> None:
    settings = make_settings(env(search))
    chunks = expected_chunks(kb, "it/vpn.md")
    search.document_faults = {chunks[1].id: [400]}

    summary = await index(settings, kb)

    assert summary.files_failed == 1
    (error,) = summary.errors
    assert error.path == str(kb / "it" / "vpn.md") and "400" in error.reason and chunks[1].id in error.reason
    assert chunks[0].id not in search.docs(), "the file's hash must not be recorded after a failed upload"
    assert summary.files_indexed == 4

    again = await index(settings, kb)
    assert (again.files_failed, again.files_indexed, again.files_unchanged) == (0, 1, 4)
    assert by_file(search)["it/vpn.md"] == {c.id for c in chunks}


async def test_recreate_drops_the_index_and_dry_run_writes_nothing(
    search: FakeSearch, make_settings: Make, kb: Path
) -> None:
    settings = make_settings(env(search))
    dry = await index(settings, kb, dry_run=True)
    assert dry.dry_run and dry.chunks_added > 0 and dry.files_indexed == 5
    assert not search.indexes and all(
        r.method == "POST" and "search.post.search" in r.path for r in search.requests
    )

    await index(settings, kb)
    search.docs()["stray"] = {"id": "stray", "filepath": "elsewhere.md", "chunk_id": "3"}
    summary = await index(settings, kb, recreate=True)
    methods = [(r.method, r.path) for r in search.requests if r.path == "/indexes('kb')"]
    assert methods[-2:] == [("DELETE", "/indexes('kb')"), ("PUT", "/indexes('kb')")]
    assert "stray" not in search.docs() and summary.chunks_added == len(search.docs())


async def test_azure_is_the_default_target_with_the_sample_app_chunk_size(
    search: FakeSearch, make_settings: Make
) -> None:
    settings = make_settings(env(search))
    assert default_target(settings) == "azure"
    setup = build_setup(settings, "azure")
    assert (setup.chunk_tokens, setup.overlap, setup.target.dimensions) == (1024, 128, DIMS)
    await setup.target.aclose()
    await setup.embedder.aclose()  # type: ignore[union-attr]


async def test_refused_key_is_an_auth_error(search: FakeSearch, make_settings: Make, kb: Path) -> None:
    settings = make_settings(env(search, AZURE_SEARCH_KEY="wrong"))
    with pytest.raises(AuthError, match="refused"):
        await index(settings, kb)


@pytest.mark.parametrize("query_type", ["vector_semantic_hybrid", "vector", "semantic"])
def test_index_agrees_with_the_on_your_data_source(make_settings: Make, query_type: str) -> None:
    """The bot's data source (fields_mapping, vector fields, semantic configuration, embedding dependency)
    names only what the indexer creates, with the attributes On Your Data needs."""
    settings = make_settings(
        {
            "AZURE_SEARCH_SERVICE": "contoso",
            "AZURE_SEARCH_KEY": "k",
            "AZURE_SEARCH_INDEX": "kb",
            "AZURE_SEARCH_QUERY_TYPE": query_type,
            "AZURE_SEARCH_CONTENT_COLUMNS": "content",
            "AZURE_SEARCH_SEMANTIC_SEARCH_CONFIG": "my-semantic",
            "AZURE_SEARCH_PERMITTED_GROUPS_COLUMN": "group_ids",
            "AZURE_SEARCH_PERMITTED_USERS_COLUMN": "oids",
            "AZURE_OPENAI_RESOURCE": "contoso-aoai",
            "AZURE_OPENAI_MODEL": "gpt-4o",
            "AZURE_OPENAI_EMBEDDING_NAME": "text-embedding-3-large",
            "AZURE_OPENAI_EMBEDDING_DIMENSIONS": "3072",
        }
    )
    index_def = build_index(IndexSpec.from_settings(settings.search, settings.openai)).as_dict()
    fields = {f["name"]: f for f in index_def["fields"]}
    source = AzureSearchSource.from_settings(settings)
    wire = data_source(source, dialect("2024-10-21"), None)["parameters"]

    mapping = wire["fields_mapping"]
    assert mapping["content_fields"] and all(fields[f]["searchable"] for f in mapping["content_fields"])
    assert fields[mapping["title_field"]]["searchable"]
    for name in (mapping["url_field"], mapping["filepath_field"]):
        assert fields[name]["retrievable"]
    for name in (source.permitted_groups_field, source.permitted_users_field):
        assert name and fields[name]["filterable"] and fields[name]["type"] == "Collection(Edm.String)"
    for name in mapping.get("vector_fields", []):
        assert fields[name]["type"] == "Collection(Edm.Single)" and fields[name]["dimensions"] == 3072
    if "semantic" in query_type:
        assert wire["semantic_configuration"] in {c["name"] for c in index_def["semantic"]["configurations"]}
    if "vector" in query_type:
        assert mapping["vector_fields"] == ["contentVector"]
        (vectorizer,) = index_def["vectorSearch"]["vectorizers"]
        assert (
            wire["embedding_dependency"]["deployment_name"]
            == vectorizer["azureOpenAIParameters"]["deploymentId"]
        )
        assert vectorizer["azureOpenAIParameters"]["resourceUri"] == "https://contoso-aoai.openai.azure.com"
        assert vectorizer["azureOpenAIParameters"]["modelName"] == "text-embedding-3-large"


async def test_batches_stay_within_the_document_and_size_limits() -> None:
    spec = IndexSpec(name="kb")
    actions = [Action("upload", "f.md", {"id": str(n)}, 40) for n in range(7)]
    by_count = AzureSearchTarget.with_key(spec, "http://127.0.0.1:9", "k", batch_docs=3, batch_bytes=10_000)
    by_size = AzureSearchTarget.with_key(spec, "http://127.0.0.1:9", "k", batch_docs=3, batch_bytes=100)
    try:
        assert [len(b) for b in by_count._batches(actions)] == [3, 3, 1]
        assert [len(b) for b in by_size._batches(actions)] == [2, 2, 2, 1]
        assert [a.document["id"] for b in by_size._batches(actions) for a in b] == [str(n) for n in range(7)]
    finally:
        await by_count.aclose()
        await by_size.aclose()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"AZURE_SEARCH_INDEX": ""}, "AZURE_SEARCH_INDEX"),
        ({"AZURE_SEARCH_FILENAME_COLUMN": ""}, "AZURE_SEARCH_FILENAME_COLUMN"),
        (
            {"AZURE_OPENAI_EMBEDDING_NAME": "", "AZURE_SEARCH_VECTOR_COLUMNS": "v"},
            "AZURE_OPENAI_EMBEDDING_NAME",
        ),
    ],
)
def test_azure_target_needs_its_settings(
    search: FakeSearch, make_settings: Make, variables: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        azure_setup(make_settings(env(search, **variables)))
