"""The embedded store on real SQLite files: incremental replacement, both searches, trimming, reloads."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.contract import Asker
from rag.documents import Chunk
from rag.errors import ConfigError
from rag.local.store import BM25_WEIGHTS, FileChange, LocalStore, StoreMismatchError

DIMS = 8
PASSAGES = {
    "password": "To reset a forgotten password, open the self-service portal and verify your phone number.",
    "printer": "The printer on floor 3 jams when the paper tray is overfilled; call facilities.",
    "vpn": "VPN error 809 means the firewall blocks the L2TP ports; use the SSTP profile instead.",
    "access": "Error 0x80070005 is access denied: ask the file share owner to grant you permission.",
    "holiday": "Annual leave requests go through the HR portal at least two weeks in advance.",
    "laptop": "Lost laptops must be reported to the service desk within one hour.",
}


def unit(seed: int, dims: int = DIMS) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    return vector / np.linalg.norm(vector)


def chunk(
    key: str,
    position: int,
    *,
    filepath: str = "kb.md",
    content_hash: str = "h1",
    groups: tuple[str, ...] = (),
    users: tuple[str, ...] = (),
) -> Chunk:
    return Chunk(
        id=f"{filepath}#{key}",
        content=PASSAGES[key],
        title=key.title(),
        filepath=filepath,
        chunk_id=str(position),
        content_hash=content_hash,
        group_ids=list(groups),
        user_ids=list(users),
    )


def vectors_for(chunks: list[Chunk]) -> np.ndarray:
    keys = list(PASSAGES)
    rows = [unit(keys.index(c.id.split("#")[1])) for c in chunks]
    return np.array(rows, dtype=np.float32).reshape(len(chunks), DIMS)


def ids(hits: list) -> list[str]:
    return [hit.chunk.id for hit in hits]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "index.sqlite", dimensions=DIMS, embedder_name="test") as opened:
        yield opened


def fill(store: LocalStore, keys: list[str], filepath: str = "kb.md", **kwargs: object) -> FileChange:
    chunks = [chunk(key, i, filepath=filepath, **kwargs) for i, key in enumerate(keys)]  # type: ignore[arg-type]
    return store.replace_file(filepath, chunks, vectors_for(chunks))


def test_replace_file_counts_by_chunk_id_and_leaves_no_stale_chunk(store: LocalStore) -> None:
    assert fill(store, ["password", "printer", "vpn"]) == FileChange(added=3)
    assert store.count() == 3

    # same text again (file hash changed): nothing counted, hash refreshed
    assert fill(store, ["password", "printer", "vpn"], content_hash="h2") == FileChange()
    assert store.file_hashes() == {"kb.md": "h2"}

    # the file shrinks and one passage changes: printer kept, vpn changed, password gone, laptop new
    edited = [chunk("printer", 0, content_hash="h3"), chunk("vpn", 1, content_hash="h3")]
    edited[1] = edited[1].model_copy(update={"content": "VPN error 809: switch to the SSTP profile."})
    edited.append(chunk("laptop", 2, content_hash="h3"))
    assert store.replace_file("kb.md", edited, vectors_for(edited)) == FileChange(
        added=1, updated=1, deleted=1
    )
    assert store.count() == 3
    assert ids(store.keyword_search("forgotten password phone", 10)) == []
    assert "kb.md#password" not in ids(store.vector_search(unit(0), 10))
    hits = store.keyword_search("SSTP", 10)
    assert [h.chunk.content for h in hits] == ["VPN error 809: switch to the SSTP profile."]
    assert store.vector_search(unit(5), 1)[0].chunk.id == "kb.md#laptop"


def test_files_hashes_and_delete_file(store: LocalStore) -> None:
    fill(store, ["password", "printer"], filepath="a.md", content_hash="ha")
    fill(store, ["vpn"], filepath="b.md", content_hash="hb")
    assert store.files() == ["a.md", "b.md"]
    assert store.file_hashes() == {"a.md": "ha", "b.md": "hb"}

    assert store.delete_file("a.md") == 2
    assert store.files() == ["b.md"]
    assert store.count() == 1
    assert store.keyword_search("printer", 5) == []
    assert ids(store.vector_search(unit(1), 5)) == ["b.md#vpn"]
    assert store.delete_file("a.md") == 0


def test_a_file_without_chunks_is_remembered_only_with_its_hash(store: LocalStore) -> None:
    fill(store, ["password"], filepath="empty.md")
    assert store.replace_file("empty.md", [], np.zeros((0, DIMS)), content_hash="h9") == FileChange(deleted=1)
    assert store.file_hashes() == {"empty.md": "h9"}
    assert store.count() == 0
    store.replace_file("empty.md", [], np.zeros((0, DIMS)))
    assert store.file_hashes() == {}


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda c, v: ("kb.md", c, v[:1]), "shape"),
        (lambda c, v: ("kb.md", c, np.zeros((len(c), DIMS + 1))), "shape"),
        (lambda c, v: ("kb.md", c, np.full_like(v, np.nan)), "NaN"),
        (lambda c, v: ("other.md", c, v), "other files"),
        (lambda c, v: ("kb.md", [c[0], c[0]], v), "duplicate"),
        (lambda c, v: ("kb.md", [c[0], c[1].model_copy(update={"content_hash": "x"})], v), "hashes"),
    ],
)
def test_bad_replacements_are_refused_and_change_nothing(store: LocalStore, make_args, message: str) -> None:
    fill(store, ["holiday"])
    chunks = [chunk("password", 0), chunk("printer", 1)]
    with pytest.raises(ValueError, match=message):
        store.replace_file(*make_args(chunks, vectors_for(chunks)))
    assert store.count() == 1
    assert store.file_hashes() == {"kb.md": "h1"}


def test_a_chunk_id_cannot_move_silently_between_files(store: LocalStore) -> None:
    fill(store, ["password"], filepath="a.md")
    stolen = chunk("password", 0, filepath="b.md").model_copy(update={"id": "a.md#password"})
    with pytest.raises(ValueError, match="other files"):
        store.replace_file("b.md", [stolen], vectors_for([chunk("password", 0)]))
    assert store.files() == ["a.md"]


def test_keyword_search_ranks_matches_and_scores_partial_ones(store: LocalStore) -> None:
    fill(store, list(PASSAGES))
    hits = store.keyword_search("how do I reset my password?", 5)
    assert ids(hits)[0] == "kb.md#password"
    # OR semantics: a query mixing two topics finds both, best match first
    hits = store.keyword_search("printer paper tray password", 5)
    assert ids(hits)[:2] == ["kb.md#printer", "kb.md#password"]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert all(h.query == "printer paper tray password" for h in hits)
    # porter stemming: "jammed" finds "jams"
    assert ids(store.keyword_search("jammed", 5)) == ["kb.md#printer"]
    assert len(store.keyword_search("portal", 1)) == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("0x80070005", "kb.md#access"),
        ("I get 0x80070005 when opening the share", "kb.md#access"),
        ("error 809", "kb.md#vpn"),
        ("809", "kb.md#vpn"),
        ("L2TP", "kb.md#vpn"),
    ],
)
def test_identifiers_and_error_codes_are_searchable(store: LocalStore, query: str, expected: str) -> None:
    fill(store, list(PASSAGES))
    assert ids(store.keyword_search(query, 3))[0] == expected


@pytest.mark.parametrize(
    "query",
    [
        "NOT printer",
        "printer NOT",
        "printer AND",
        "NEAR(printer jams, 2)",
        "title:printer",
        "content : printer",
        '"printer',
        'printer"',
        '""printer""',
        "-printer",
        "printer*",
        "^printer",
        "(printer",
        "printer)",
        "{title content}: printer",
        "printer + + OR OR",
        "printer's",
    ],
)
def test_fts_syntax_in_user_text_is_plain_text(store: LocalStore, query: str) -> None:
    fill(store, list(PASSAGES))
    assert ids(store.keyword_search(query, 3))[0] == "kb.md#printer"


@pytest.mark.parametrize("query", ["", "   ", "***", '"', "-", ":", "()", "NOT", "¿?", "\x00"])
def test_queries_without_terms_find_nothing(store: LocalStore, query: str) -> None:
    fill(store, list(PASSAGES))
    assert store.keyword_search(query, 5) == []


def test_unicode_terms_are_searchable(store: LocalStore) -> None:
    text = "Der Drucker im Büro druckt nicht. 打印机 不工作"
    c = chunk("printer", 0).model_copy(update={"content": text})
    store.replace_file("kb.md", [c], vectors_for([chunk("printer", 0)]))
    assert ids(store.keyword_search("büro", 1)) == ["kb.md#printer"]
    assert ids(store.keyword_search("BURO", 1)) == ["kb.md#printer"]  # diacritics and case folded
    assert ids(store.keyword_search("打印机", 1)) == ["kb.md#printer"]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    with LocalStore(tmp_path_factory.mktemp("fuzz") / "i.sqlite", dimensions=DIMS, embedder_name="t") as s:
        fill(s, list(PASSAGES))
        yield s


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_any_text_is_a_safe_query(filled: LocalStore, text: str) -> None:
    hits = filled.keyword_search(text, 3)
    assert len(hits) <= 3
    assert all(h.score >= 0 for h in hits)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from(
            [
                '"',
                "NOT",
                "AND",
                "OR",
                "NEAR",
                "(",
                ")",
                ":",
                "*",
                "-",
                "^",
                "+",
                "{",
                "}",
                "title",
                "printer",
                "809",
                " ",
            ]
        ),
        max_size=20,
    )
)
def test_any_mix_of_fts_operators_is_a_safe_query(filled: LocalStore, parts: list[str]) -> None:
    hits = filled.keyword_search(" ".join(parts), 10)
    # operators are ordinary words: a passage is found iff it contains one of the words
    words = {part.lower() for part in parts if part.isalnum()}
    expected = {
        f"kb.md#{key}"
        for key, text in PASSAGES.items()
        if words & set(re.findall(r"\w+", f"{key} {text}".lower()))
    }
    assert set(ids(hits)) == expected


RARE_WORDS = [
    "password",
    "forgotten",
    "printer",
    "jams",
    "paper",
    "vpn",
    "error",
    "809",
    "0x80070005",
    "portal",
]
RARE_WORDS += ["laptops", "hour", "phone", "access", "firewall", "denied", "leave", "weeks", "floor", "share"]


@pytest.fixture(scope="module")
def ranked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    """The passages twice, once under headings naming other passages' topics (so all columns count)."""
    with LocalStore(tmp_path_factory.mktemp("bm25") / "i.sqlite", dimensions=DIMS, embedder_name="t") as s:
        fill(s, list(PASSAGES))
        keys = list(PASSAGES)
        chunks = [
            chunk(key, i, filepath="faq.md").model_copy(update={"heading_path": ["FAQ", keys[i - 1]]})
            for i, key in enumerate(keys)
        ]
        s.replace_file("faq.md", chunks, vectors_for(chunks))
        yield s


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(RARE_WORDS), min_size=1, max_size=6, unique=True))
def test_keyword_scores_are_fts5_bm25(ranked: LocalStore, words: list[str]) -> None:
    """The in-memory ranking gives FTS5's own bm25() with the column weights, to rounding."""
    hits = ranked.keyword_search(" ".join(words), 20)
    expected = fts5_bm25(ranked.path, words)
    found = {hit.chunk.id: hit.score for hit in hits}
    assert found.keys() == expected.keys()
    assert all(np.isclose(found[key], score, rtol=1e-9) for key, score in expected.items())
    assert [hit.score for hit in hits] == sorted(found.values(), reverse=True)


def fts5_bm25(path: Path, words: list[str]) -> dict[str, float]:
    """chunk id -> -bm25() as FTS5 itself ranks the OR of `words` (the reference for the in-memory one)."""
    weights = ", ".join(str(w) for w in BM25_WEIGHTS.values())
    with closing(sqlite3.connect(path)) as db:
        return dict(
            db.execute(
                f"SELECT chunks.id, -bm25(chunks_fts, {weights}) FROM chunks_fts "
                "JOIN chunks ON row = chunks_fts.rowid WHERE chunks_fts MATCH ?",
                (" OR ".join(f'"{w}"' for w in words),),
            ).fetchall()
        )


def test_keyword_scores_follow_other_writers(tmp_path: Path) -> None:
    """Cached postings and lengths are dropped when another connection commits: scores stay FTS5's."""
    path = tmp_path / "i.sqlite"
    with LocalStore(path, dimensions=DIMS) as reader, LocalStore(path, dimensions=DIMS) as writer:
        fill(writer, ["printer", "vpn", "access", "laptop"])
        words = ["printer", "paper", "firewall"]  # each in under half the chunks: none left out
        assert {h.chunk.id: h.score for h in reader.keyword_search(" ".join(words), 10)} == pytest.approx(
            fts5_bm25(path, words)
        )
        fill(writer, ["printer", "vpn"], filepath="more.md")  # new rows: counts and lengths change
        writer.delete_file("kb.md")  # vanished rows
        found = {h.chunk.id: h.score for h in reader.keyword_search(" ".join(words), 10)}
        assert set(found) == {"more.md#printer", "more.md#vpn"}
        assert found == pytest.approx(fts5_bm25(path, words))


def test_vector_search_orders_by_cosine(store: LocalStore) -> None:
    fill(store, list(PASSAGES))
    rng = np.random.default_rng(42)
    query = unit(2) + 0.05 * rng.standard_normal(DIMS).astype(np.float32)
    hits = store.vector_search(query * 7.0, 6)  # the query need not be normalised
    assert hits[0].chunk.id == "kb.md#vpn"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert 0.95 < scores[0] <= 1.0 + 1e-6
    assert len(hits) == len(PASSAGES)
    assert store.vector_search(unit(3), 1)[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(store.vector_search(query, 2)) == 2
    with pytest.raises(ValueError, match="dimensions"):
        store.vector_search(np.ones(DIMS + 1), 3)


def test_both_searches_show_each_asker_exactly_what_they_may_see(store: LocalStore) -> None:
    fill(store, ["password"], filepath="public.md")
    fill(store, ["holiday"], filepath="hr.md", groups=("hr", "managers"))
    fill(store, ["laptop"], filepath="it.md", groups=("it",))
    fill(store, ["vpn"], filepath="ceo.md", users=("oid-ceo", "oid-o'brien"))
    fill(store, ["access"], filepath="audit.md", groups=("audit",), users=("oid-ceo",))
    everything = {"public.md#password", "hr.md#holiday", "it.md#laptop", "ceo.md#vpn", "audit.md#access"}
    query = "portal service desk hour password annual error"

    def both(asker: Asker | None) -> set[str]:
        keyword = set(ids(store.keyword_search(query, 10, asker)))
        vector = set(ids(store.vector_search(sum(unit(i) for i in range(6)), 10, asker)))
        assert keyword == vector
        return keyword

    assert both(None) == everything  # no trimming: index maintenance only
    public = {"public.md#password"}
    assert both(Asker()) == public  # anonymous
    assert both(Asker(user_id="web-1", groups=[""], aad_object_id="")) == public
    assert both(Asker(groups=["managers"])) == public | {"hr.md#holiday"}
    assert both(Asker(groups=["it", "nobody"])) == public | {"it.md#laptop"}
    assert both(Asker(aad_object_id="oid-o'brien")) == public | {"ceo.md#vpn"}
    assert both(Asker(aad_object_id="oid-ceo")) == public | {"ceo.md#vpn", "audit.md#access"}
    assert both(Asker(aad_object_id="hr", groups=["oid-ceo"])) == public  # a group is not a user
    assert both(Asker(aad_object_id="oid-ceo", groups=["hr", "it"])) == everything


PRINCIPALS = st.sampled_from(["hr", "it", "oid-1", "oid-2", "a,b", "o'brien"])
ACCESS = st.tuples(
    st.lists(PRINCIPALS, max_size=2, unique=True), st.lists(PRINCIPALS, max_size=2, unique=True)
)


@settings(max_examples=60, deadline=None)
@given(
    access=st.lists(ACCESS, min_size=1, max_size=len(PASSAGES)),
    asker=st.builds(
        Asker, aad_object_id=st.one_of(st.none(), PRINCIPALS), groups=st.lists(PRINCIPALS, max_size=3)
    ),
)
def test_a_search_returns_exactly_what_the_askers_rule_allows(
    tmp_path_factory: pytest.TempPathFactory, access: list[tuple[list[str], list[str]]], asker: Asker
) -> None:
    keys = list(PASSAGES)
    path = tmp_path_factory.mktemp("access") / "index.sqlite"
    with LocalStore(path, dimensions=DIMS, embedder_name="test") as store:
        for number, (groups, users) in enumerate(access):
            fill(store, [keys[number]], filepath=f"f{number}.md", groups=tuple(groups), users=tuple(users))
        allowed = {
            f"f{number}.md#{keys[number]}"
            for number, (groups, users) in enumerate(access)
            if asker.may_see(groups, users)
        }
        assert set(ids(store.vector_search(unit(0), 10, asker))) == allowed
        assert set(ids(store.keyword_search(" ".join(PASSAGES.values()), 10, asker))) <= allowed


def test_access_lists_survive_reopening_and_are_compared_on_update(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    with LocalStore(path, dimensions=DIMS) as writer:
        fill(writer, ["vpn"], filepath="ceo.md", users=("oid-ceo",))
        fill(writer, ["holiday"], filepath="hr.md", groups=("hr",))
        # the same text for other users is a change: counted as updated
        assert fill(writer, ["vpn"], filepath="ceo.md", users=("oid-cfo",)) == FileChange(updated=1)
    with LocalStore(path, dimensions=DIMS, read_only=True) as reader:
        assert ids(reader.vector_search(unit(2), 1, Asker(aad_object_id="oid-cfo"))) == ["ceo.md#vpn"]
        assert ids(reader.vector_search(unit(2), 5, Asker(aad_object_id="oid-ceo"))) == []
        assert ids(reader.keyword_search("annual leave", 5, Asker(groups=["hr"]))) == ["hr.md#holiday"]
        assert reader.file_chunks("ceo.md")[0].user_ids == ["oid-cfo"]


def test_a_reader_sees_what_another_connection_wrote(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with LocalStore(path, dimensions=DIMS) as reader, LocalStore(path, dimensions=DIMS) as writer:
        assert reader.vector_search(unit(0), 3) == []  # loads the (empty) matrix
        fill(writer, ["password", "printer"])
        assert ids(reader.vector_search(unit(1), 1)) == ["kb.md#printer"]
        writer.delete_file("kb.md")
        assert reader.vector_search(unit(1), 3) == []
        fill(writer, ["vpn"], filepath="b.md")
        assert ids(reader.vector_search(unit(1), 3)) == ["b.md#vpn"]
        assert reader.file_hashes() == {"b.md": "h1"}


def test_a_store_built_for_another_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    with LocalStore(path, dimensions=DIMS, embedder_name="model-a") as first:
        fill(first, ["password"])
    for kwargs in (
        {"dimensions": DIMS, "embedder_name": "model-b"},
        {"dimensions": 16, "embedder_name": "model-a"},
    ):
        with pytest.raises(StoreMismatchError, match="built differently") as caught:
            LocalStore(path, **kwargs)  # type: ignore[arg-type]
        assert isinstance(caught.value, ConfigError)
    with LocalStore(path, dimensions=DIMS, embedder_name="model-a") as again:
        assert again.count() == 1


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from rag.documents import Chunk
    from rag.local.store import LocalStore

    with LocalStore(sys.argv[1], dimensions=4) as store:
        for round in range(60):
            n = 1 + round % 5
            chunks = [Chunk(id=f"f.md#{i}", content=f"round {round} passage {i} printer", filepath="f.md",
                            chunk_id=str(i), content_hash=str(round)) for i in range(n)]
            store.replace_file("f.md", chunks, np.tile(np.eye(4, dtype=np.float32)[:1], (n, 1)))
    """
)


def test_searching_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite"
    query = np.array([1, 0, 0, 0], dtype=np.float32)
    with LocalStore(path, dimensions=4) as reader:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        rounds: set[int] = set()
        while writer.poll() is None:
            # a keyword search reads one snapshot: every chunk of exactly one round (it writes 1 + round % 5)
            keyword = reader.keyword_search("printer passage", 10)
            versions = {int(h.chunk.content_hash) for h in keyword}
            assert len(versions) <= 1
            for version in versions:
                assert len(keyword) == 1 + version % 5
                rounds.add(version)
            # vector hits come from the in-memory copy: never a mix of rounds, never more than one round has
            hits = reader.vector_search(query, 10)
            versions = {int(h.chunk.content_hash) for h in hits}
            assert len(versions) <= 1
            assert all(len(hits) <= 1 + version % 5 for version in versions)
        assert writer.wait() == 0
        assert len(rounds) >= 2  # the reader really searched while the file changed
        final = reader.vector_search(query, 10)
        assert len(final) == 5 and {h.chunk.content_hash for h in final} == {"59"}
        assert reader.count() == 5


def test_terms_most_chunks_hold_are_left_out_unless_nothing_else_is_left(store: LocalStore) -> None:
    chunks = [chunk(key, i) for i, key in enumerate(PASSAGES)]
    chunks = [c.model_copy(update={"content": f"The {c.content}"}) for c in chunks]
    store.replace_file("kb.md", chunks, vectors_for(chunks))
    assert store.document_frequencies(store.index_terms("the printer")) == {"the": 6, "printer": 1}
    # "the" is in every chunk: it would only add ~0-score hits
    assert ids(store.keyword_search("the printer", 10)) == ["kb.md#printer"]
    assert len(store.keyword_search("the", 10)) == len(PASSAGES)


def test_term_statistics_follow_other_writers(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with LocalStore(path, dimensions=DIMS) as reader, LocalStore(path, dimensions=DIMS) as writer:
        fill(writer, ["printer"], filepath="a.md")
        assert reader.index_terms("Printers jammed!") == ["printer", "jam"]
        assert reader.document_frequencies(["printer", "jam"]) == {"printer": 1, "jam": 1}
        assert reader.count() == 1
        fill(writer, ["printer"], filepath="b.md")
        assert reader.document_frequencies(["printer", "zebra"]) == {"printer": 2, "zebra": 0}
        assert reader.count() == 2


def test_group_changes_reach_a_reader_in_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with LocalStore(path, dimensions=DIMS) as reader, LocalStore(path, dimensions=DIMS) as writer:
        fill(writer, ["holiday", "laptop"], filepath="hr.md", groups=("hr",))
        fill(writer, ["password"], filepath="it.md")
        assert ids(reader.vector_search(unit(4), 1, Asker())) == ["it.md#password"]
        assert ids(reader.keyword_search("annual leave", 5, Asker())) == []
        # the file becomes public: same text, new groups -> counted as updated, visible to everyone
        assert fill(writer, ["holiday", "laptop"], filepath="hr.md") == FileChange(updated=2)
        assert ids(reader.vector_search(unit(4), 1, Asker())) == ["hr.md#holiday"]
        assert ids(reader.keyword_search("annual leave", 5, Asker())) == ["hr.md#holiday"]
        writer.delete_file("it.md")
        hr = Asker(groups=["hr"])
        assert set(ids(reader.vector_search(unit(0), 5, hr))) == {"hr.md#holiday", "hr.md#laptop"}


def test_a_reader_follows_a_rebuilt_file(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    with LocalStore(path, dimensions=DIMS) as reader:
        with LocalStore(path, dimensions=DIMS) as old:
            fill(old, ["printer"])
        assert ids(reader.keyword_search("printer", 3)) == ["kb.md#printer"]
        for suffix in ("", "-wal", "-shm"):  # what `ragbot index --recreate` does
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        assert ids(reader.keyword_search("printer", 3)) == ["kb.md#printer"]  # still the old copy meanwhile
        with LocalStore(path, dimensions=DIMS) as rebuilt:
            fill(rebuilt, ["vpn"], filepath="new.md")
            assert reader.files() == ["new.md"]
            assert ids(reader.vector_search(unit(2), 3)) == ["new.md#vpn"]
            assert reader.keyword_search("printer", 3) == []
        with LocalStore(path, dimensions=DIMS) as check:
            assert check.files() == ["new.md"]


def test_a_reader_follows_an_index_moved_over_its_file_and_sees_no_half_built_one(tmp_path: Path) -> None:
    path, building = tmp_path / "index.sqlite", tmp_path / "index.sqlite.rebuild-1"
    with LocalStore(path, dimensions=DIMS) as old:
        fill(old, ["printer"])
    with LocalStore(path, dimensions=DIMS, read_only=True) as reader:
        assert ids(reader.keyword_search("printer", 3)) == ["kb.md#printer"]
        rebuilt = LocalStore(building, dimensions=DIMS)
        fill(rebuilt, ["vpn"], filepath="new.md")
        assert ids(reader.keyword_search("printer", 3)) == ["kb.md#printer"]  # the old index meanwhile
        rebuilt.move_to(path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["index.sqlite"]  # whole: no WAL left
        assert reader.files() == ["new.md"]
        assert ids(reader.vector_search(unit(2), 3)) == ["new.md#vpn"]
        assert reader.keyword_search("printer", 3) == []
    with LocalStore(path, dimensions=DIMS) as writer:  # the next incremental run writes in WAL mode again
        fill(writer, ["laptop"], filepath="more.md")
        assert writer._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert writer.files() == ["more.md", "new.md"]


def test_a_file_rebuilt_for_another_model_is_refused_by_a_running_reader(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    with LocalStore(path, dimensions=DIMS, embedder_name="model-a") as reader:
        fill(reader, ["printer"])
        Path(path).unlink()
        with LocalStore(path, dimensions=16, embedder_name="model-b"):
            pass
        with pytest.raises(StoreMismatchError, match="model-b"):
            reader.keyword_search("printer", 3)


def test_entra_ids_are_kept_in_lower_case(store: LocalStore) -> None:
    guid = "6F1C2A5E-0B7D-4C1A-9E3F-2D8B7A6C5E4F"
    fill(store, ["vpn"], filepath="ceo.md", users=(guid,))
    assert store.file_chunks("ceo.md")[0].user_ids == [guid.lower()]
    assert ids(store.vector_search(unit(2), 1, Asker(aad_object_id=guid.lower()))) == ["ceo.md#vpn"]


@pytest.mark.parametrize("read_only", [False, True])
def test_an_index_path_that_is_a_folder_is_called_a_folder(tmp_path: Path, read_only: bool) -> None:
    """SQLite says only "unable to open database file", which read as a permission problem."""
    path = tmp_path / "index.sqlite"
    path.mkdir()
    with pytest.raises(ConfigError, match=r"index\.sqlite is a folder, not an index file") as caught:
        LocalStore(path, read_only=read_only)
    assert "writable" not in str(caught.value)
