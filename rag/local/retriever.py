"""LocalRetriever: the grounded pipeline's retriever over the embedded store (FTS5 bm25 + exact vectors).

Query types map onto the store the way they do onto Azure AI Search: `simple` is keyword search,
`vector` is vector search, the hybrids fuse both lists by weighted rank. The candidates are then ordered
by their relevance, as the semantic ranker reorders Azure's. There is no semantic reranker
locally, so `semantic` runs like `vector_simple_hybrid` and `vector_semantic_hybrid` like the hybrid too.

Relevance (`rerank_score`, what strictness cuts on) is the local stand-in for the semantic reranker's
score, whatever the query type: the mean of the MiniLM cosine of query and chunk and the query's term
coverage (the idf-weighted share of the query's content words the chunk contains). Cosine alone cannot
tell "who is the CEO of Contoso" from an answerable question (every article says Contoso); the coverage
notices that the rare, decisive word is missing (a word no chunk holds at all weighs twice its idf), and
a platform's other names count as its name ("Mac": "macOS"). A keyword-only hit outside the vector
candidates is given the lowest candidate cosine, an upper bound of its own. `spell` corrects a query word
no chunk holds to the indexed word it is a typo of ("rset" -> "reset", "maternaty" -> "maternity"), a word
some public chunk holds; the answerer calls it before searching, so the corrected query is the intent
every path shows.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag import telemetry
from rag.contract import Asker
from rag.documents import Chunk, ScoredChunk
from rag.embedding import Embedder
from rag.errors import ConfigError, NotReady
from rag.grounded.fusion import fuse
from rag.grounded.text import STOPWORDS, content_words, same_platform
from rag.local.store import LocalStore, not_a_file
from rag.settings import QueryType

VECTOR_WEIGHT = 2.0
KEYWORD_WEIGHT = 1.0
"""Fusion weights of the candidate lists: dense MiniLM finds more than bm25 on help-desk questions,
keywords catch codes and names (tuned on samples/helpdesk/questions.jsonl, see rag/grounded/README.md)."""
UNKNOWN_WEIGHT = 2.0
CANDIDATES = 50
"""Vector hits scored per query: the pool relevance is read from (cheap: one exact matmul)."""
_WORD = re.compile(r"[^\W_]+")
MIN_TYPO_LENGTH = 4
SHORT_WORD = 5
LONG_WORD = 9
TYPO_PREFIX = 2
TYPO_CANDIDATES = 5000
CORRECTIONS = 1024
"""Spelling for words no chunk holds: length from which it is tried, length from which two edits are
allowed, how many first letters are tried first (typos rarely hit the start of a word), how many index
terms are compared at most, and how many corrections are remembered."""
SIMILAR_TITLES = 0.8
"""Cosine between two files' mean vectors above which the second is not suggested next to the first."""
BUILD_HINT = "run `ragbot index samples/helpdesk` (or make run) first"


class LocalRetriever:
    """Searches `index.sqlite`; the file is opened on first use so a missing index is a clear reason."""

    name = "local"

    def __init__(
        self,
        path: Path,
        embedder: Embedder,
        *,
        query_type: QueryType = QueryType.vector_simple_hybrid,
        vector_weight: float = VECTOR_WEIGHT,
        keyword_weight: float = KEYWORD_WEIGHT,
    ) -> None:
        self.path = Path(path)
        self.embedder = embedder
        self.query_type = query_type
        self.vector_weight = vector_weight
        self.keyword_weight = keyword_weight
        self._store: LocalStore | None = None
        self._central: tuple[tuple[int, int], list[str]] | None = None  # (files' hashes, count) -> titles
        self._lock = asyncio.Lock()
        self._warm = False
        self._corrections: OrderedDict[str, str | None] = OrderedDict()  # word -> correction (None: none)
        self._corrections_lock = threading.Lock()  # spell() runs in worker threads

    def _problem(self) -> str | None:
        if self.path.is_file():
            return None
        return not_a_file(self.path) or f"the local index {self.path} does not exist: {BUILD_HINT}"

    async def store(self) -> LocalStore:
        async with self._lock:
            if self._store is None:
                problem = self._problem()
                if problem:
                    raise NotReady(problem)
                self._store = await asyncio.to_thread(
                    LocalStore,
                    self.path,
                    dimensions=self.embedder.dimensions,
                    embedder_name=self.embedder.name,
                    read_only=True,
                )
            return self._store

    async def ready(self) -> str | None:
        problem = self._problem()
        if problem:
            return problem
        try:
            count = (await self.store()).count()
        except ConfigError as exc:
            return str(exc)
        telemetry.record_index_size(count)
        if count == 0:
            return f"the local index {self.path} is empty: {BUILD_HINT}"
        if not self._warm:
            await self._warm_up(await self.store())
        return None

    async def _warm_up(self, store: LocalStore) -> None:
        """Load the embedding model and the store's vectors once (about 0.3 s + 0.7 s at 50k chunks),
        so that `ready()` means the index is loaded and the first question does not pay for it."""
        vector = (await self.embedder.embed(["warm up"]))[0]
        await asyncio.to_thread(store.vector_search, vector, 1)
        self._warm = True

    async def retrieve(self, query: str, *, top: int, asker: Asker | None = None) -> list[ScoredChunk]:
        store = await self.store()
        asker = asker or Asker()  # the index knows every document's access list: it always trims
        keyword = self.query_type is QueryType.simple
        spelled = self._spelled(store, query)
        weights = self._term_weights(store, spelled)
        aliases = self._aliases(store, spelled, weights)
        vectors = (await self.embedder.embed([spelled]))[0]
        dense = store.vector_search(vectors, max(top, CANDIDATES), asker)
        cosine = {hit.chunk.id: hit.score for hit in dense}
        floor = min(cosine.values(), default=0.0)
        lists: list[tuple[Sequence[ScoredChunk], float]] = []
        if self.query_type is not QueryType.vector:
            # stopwords match most chunks: they slow bm25 down and add nothing to its ranking
            keywords = " ".join(content_words(spelled)) or spelled
            lists.append((store.keyword_search(keywords, top, asker), self.keyword_weight))
        if not keyword:
            lists.append((dense[:top], self.vector_weight))
        candidates = fuse(lists)[:top]
        texts = [f"{hit.chunk.title or ''} {hit.chunk.content}" for hit in candidates]
        held = store.terms_present(texts, [*weights, *(a for names in aliases.values() for a in names)])
        hits = [
            hit.model_copy(
                update={
                    "query": query,
                    "rerank_score": _relevance(
                        cosine.get(hit.chunk.id, floor),
                        have | {t for t, names in aliases.items() if names & have},
                        weights,
                    ),
                }
            )
            for hit, have in zip(candidates, held, strict=True)
        ]
        return sorted(hits, key=lambda hit: hit.rerank_score or 0.0, reverse=True)

    def _term_weights(self, store: LocalStore, query: str) -> dict[str, float]:
        """idf of each content term of the query, a term no chunk holds weighing the most."""
        frequencies = store.document_frequencies(store.index_terms(" ".join(content_words(query))))
        total = store.count()
        return {
            t: math.log((total + 1) / (df + 0.5)) * (UNKNOWN_WEIGHT if df == 0 else 1)
            for t, df in frequencies.items()
        }

    async def spell(self, query: str) -> str:
        """The query with each word no chunk holds replaced by the indexed word it is a typo of
        ("how do i rset my pasword" -> "how do i reset my password"): the answerer shows and searches
        this form, so every path (CLI, bot, web) corrects the same way."""
        return await asyncio.to_thread(self._spelled, await self.store(), query)

    def _spelled(self, store: LocalStore, query: str) -> str:
        def fix(match: re.Match[str]) -> str:
            word = match.group(0).lower()
            if len(word) < MIN_TYPO_LENGTH or not word.isalpha() or word in STOPWORDS:
                return match.group(0)
            with self._corrections_lock:
                cached = self._corrections.get(word, "")
            if cached == "":
                terms = store.index_terms(word)
                known = not terms or store.document_frequencies(terms)[terms[0]] > 0
                cached = None if known else _spelling(store, word)
                with self._corrections_lock:
                    self._corrections[word] = cached
                    if len(self._corrections) > CORRECTIONS:
                        self._corrections.popitem(last=False)
            return cached or match.group(0)

        return _WORD.sub(fix, query)

    # -- Library: the indexed documents themselves ----------------------------------------------

    async def document(self, filepath: str) -> list[Chunk]:
        if self._problem():
            return []
        chunks = await asyncio.to_thread((await self.store()).file_chunks, filepath)
        return [] if any(chunk.restricted for chunk in chunks) else chunks

    async def central_titles(self, count: int) -> list[str]:
        """Titles of the files whose mean vector is nearest the mean of all files, skipping a file too
        like one already picked (three VPN articles would make a poor welcome)."""
        if self._problem() or count < 1:
            return []
        store = await self.store()
        version = hash(tuple(sorted((await asyncio.to_thread(store.file_hashes)).items())))
        if self._central is not None and self._central[0] == (version, count):
            return self._central[1]
        titles = await asyncio.to_thread(self._central_titles, store, count)
        self._central = ((version, count), titles)
        return titles

    @staticmethod
    def _central_titles(store: LocalStore, count: int) -> list[str]:
        files, means = store.file_vectors()
        if not files:
            return []
        centre = means.mean(axis=0)
        order = np.argsort(-(means @ centre), kind="stable")
        picked: list[int] = []
        for index in order.tolist():
            title = files[index][1].strip()
            if not title or any(files[p][1] == title for p in picked):
                continue
            if picked and float(np.max(means[picked] @ means[index])) > SIMILAR_TITLES:
                continue
            picked.append(index)
            if len(picked) == count:
                break
        return [files[index][1].strip() for index in picked]

    def _aliases(self, store: LocalStore, query: str, weights: dict[str, float]) -> dict[str, set[str]]:
        """Index terms of the other names of a platform the query names ("mac": "macos", "macbook")."""
        aliases: dict[str, set[str]] = {}
        for word in content_words(query):
            others = same_platform(word)
            term = store.index_terms(word)
            if others and term and term[0] in weights:
                aliases[term[0]] = {t for other in others for t in store.index_terms(other)}
        return aliases

    async def aclose(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def _relevance(cosine: float, held: set[str], weights: dict[str, float]) -> float:
    """Mean of the cosine and the idf-weighted share of the query's terms the chunk holds."""
    if not weights:
        return cosine
    return (cosine + sum(w for t, w in weights.items() if t in held) / sum(weights.values())) / 2


def _spelling(store: LocalStore, word: str) -> str | None:
    """The indexed word a word found nowhere is most likely a typo of: one edit away (two from
    `LONG_WORD` letters on; a four-letter word only by a missing letter, "rset" -> "reset"),
    the same first letters where any such word exists, else the same first letter, the most common on
    a tie. Index terms are stems, so each is compared in the forms it stands for ("matern" as
    "maternity"), and a form counts only if the index reads it as that stem and a public chunk holds it
    (the correction is shown to every asker); None when nothing is close."""
    allowed = 1 if len(word) < LONG_WORD else 2
    for prefix in (word[:TYPO_PREFIX], word[:1]):
        found: list[tuple[int, int, int, str, str]] = []
        for stem, df in store.terms_with_prefix(prefix, limit=TYPO_CANDIDATES).items():
            if not stem.isalpha() or not len(word) - allowed - MAX_SUFFIX <= len(stem) <= len(word) + allowed:
                continue
            if len(prefix) < TYPO_PREFIX and not _second_letter_typo(word, stem):
                continue
            for surface in _surfaces(stem):
                if abs(len(surface) - len(word)) > allowed or (
                    len(word) < SHORT_WORD and len(surface) <= len(word)
                ):
                    continue
                distance = _edits(word, surface, allowed, change_cost=None)
                if distance <= allowed:
                    exact = _edits(word, surface, 2 * allowed + 2, swap_cost=2, change_cost=2)
                    found.append((distance, -df, exact, surface, stem))
        for *_, surface, stem in sorted(found):
            if store.index_terms(surface) == [stem] and store.held_publicly(stem):
                return surface
    return None


def _second_letter_typo(word: str, stem: str) -> bool:
    """Past the first letter, the typo of a word whose second letter differs is at that letter: one
    missing ("rset" / "reset"), one extra, one changed or two swapped; anything else is no candidate."""
    return (
        stem[2:4] == word[1:3]
        or stem[1:3] == word[2:4]
        or stem[2:4] == word[2:4]
        or stem[1:3] == word[2] + word[1]
        if len(word) > 2
        else False
    )


_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {
    key: {row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)}
    | {other[j] for other in _KEYBOARD if other != row for j in (i - 1, i, i + 1) if 0 <= j < len(other)}
    for row in _KEYBOARD
    for i, key in enumerate(row)
}
_SOUND_ALIKE = ({"c", "s"}, {"c", "k"}, {"s", "z"}, {"f", "v"}, {"g", "j"})
_VOWELS = frozenset("aeiouy")


def _alike(a: str, b: str) -> bool:
    return (
        b in _NEIGHBOURS.get(a, set())
        or (a in _VOWELS and b in _VOWELS)
        or any({a, b} == pair for pair in _SOUND_ALIKE)
    )


_SUFFIXES = ("", "e", "s", "es", "ed", "ing", "y", "ity", "ion", "al", "er", "ment", "ly")
MAX_SUFFIX = max(map(len, _SUFFIXES))


def _surfaces(stem: str) -> list[str]:
    """Words a Porter stem stands for ("recoveri": "recovery", "window": "windows")."""
    bases = [stem, stem[:-1] + "y"] if stem.endswith("i") else [stem]
    return [base + suffix for base in bases for suffix in _SUFFIXES]


def _edits(a: str, b: str, cap: int, *, swap_cost: int = 1, change_cost: int | None = 1) -> int:
    """Levenshtein distance with adjacent swaps, stopping early once it exceeds `cap`. With costs of 2
    it breaks ties: "windos" is nearer "windows" (one letter left out) than "window". A `change_cost` of
    None counts a changed letter as a typo (1) only when it is a neighbouring key, a vowel for a vowel or
    a letter that sounds alike ("expence"), else as 2: "bread" is not a typo of "break"."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else change_cost or (1 if _alike(ca, cb) else 2)
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + swap_cost)
        if min(current) > cap:
            return cap + 1
        previous2, previous = previous, current
    return previous[-1]
