"""The embedded index: one SQLite file holding chunks, an FTS5 keyword index and float32 vectors.

Why this shape: FTS5 (`porter unicode61`, `bm25()`) ships with Python's sqlite3, and an exact numpy product
over the vectors (50k x 384 in a few ms) beats an ANN extension at this scale (and this Python's sqlite3
cannot load extensions anyway). The vectors are held in memory (`rag.local.vectors`) and caught up with the
file before each search (PRAGMA data_version says whether anyone committed), so a server keeps answering
while `ragbot index` rewrites the store from another process, or even deletes and rebuilds the file.

Keyword ranking is FTS5's bm25 computed in memory: FTS5 itself scores every row holding any OR-ed term
(tens of ms at 50k chunks), while the postings of a query's terms, read once from FTS5's vocabulary
(`fts5vocab`, so tokenisation and counts are FTS5's own) and kept until the file changes, rank in a few
numpy passes (at most `POSTINGS_CACHE` pairs are kept, about 32 MB). Document lengths come from FTS5's
docsize table and follow the file with the vectors; a keyword search reads one snapshot of the file.

Concurrency: WAL mode and a busy timeout let one writer process and any number of reader processes share
the file; every write is one transaction. A rebuild is written to a file of its own and renamed over the
index when complete (`move_to`), so readers see the old index or the new one, never a half-built one.
Readers (`read_only=True`: the retrievers) never write: in a directory they cannot write to, where SQLite
cannot create the WAL's `-shm`/`-wal` files, the file is read as immutable (`immutable=1`), and replacing or
touching it (size, modification time) makes them reopen it.

Within a process one `LocalStore` may be shared by threads (a lock serialises its use) and by an asyncio
loop. Searches are synchronous and take a few ms at 50k chunks
(see `bench/local_retrieval.py`); a term's first keyword search after the file changed reads its postings
(about 0.3 us per occurrence: ~10 ms for a term in a third of 50k chunks), so async code with a large
index may call them through `asyncio.to_thread` (sqlite3 and numpy release the GIL while they work).

Scores: `keyword_search` returns what `-bm25()` would (>= 0, higher is better, unbounded: it grows with term
rarity and the number of matched terms); `vector_search` returns the cosine similarity (-1..1, higher is
better).
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePath
from types import TracebackType

import numpy as np
from pydantic import BaseModel

from rag.contract import Asker
from rag.documents import Chunk, ScoredChunk, canonical_id
from rag.errors import ConfigError
from rag.local.embedder import DIMENSIONS, MODEL_NAME
from rag.local.vectors import Principal, VectorIndex

SCHEMA_VERSION = "1"
BUSY_TIMEOUT_S = 30.0
MAX_QUERY_TERMS = 64  # bounds the cost of a pasted wall of text; the first terms carry the question
FREQUENCY_CACHE = 50_000  # document frequencies remembered between searches (cleared when the file changes)
CATCH_UP_BATCH = 4096  # new rows read into the in-memory vectors at a time
POSTINGS_CACHE = 4_000_000  # (slot, count) pairs kept between searches, 8 bytes each
# bm25 column weights for (title, headings, content): a hit in a title says more than one in a body.
BM25_WEIGHTS = {"title": 2.0, "headings": 1.5, "content": 1.0}
_COLUMN_NUMBER = (
    f"CASE col {' '.join(f'WHEN {name!r} THEN {n}' for n, name in enumerate(BM25_WEIGHTS, 1))} END"
)
BM25_K1 = 1.2  # FTS5's bm25() constants
BM25_B = 0.75

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    filepath TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    root TEXT                -- the absolute folder filepath is relative to; NULL: indexed before 2026-12
);
CREATE TABLE IF NOT EXISTS chunks (
    row INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a row number always names one vector
    id TEXT NOT NULL UNIQUE,
    filepath TEXT NOT NULL,
    title TEXT NOT NULL,
    headings TEXT NOT NULL,
    content TEXT NOT NULL,
    groups TEXT NOT NULL,    -- JSON list of group ids or {"groups": [...], "users": [...]}; '[]' = public
    data TEXT NOT NULL,      -- the whole Chunk as JSON
    vector BLOB NOT NULL     -- float32, little-endian, L2-normalised
);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks (filepath);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (
    title, headings, content, content='chunks', content_rowid='row', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, title, headings, content)
    VALUES (new.row, new.title, new.headings, new.content);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, title, headings, content)
    VALUES ('delete', old.row, old.title, old.headings, old.content);
END;
"""

# Fields whose change makes a chunk "updated" (what a search or a citation shows). The file hash and date
# change for every chunk of an edited file and the position when text above it moves, so those are
# refreshed silently.
_COMPARED_FIELDS = {"content", "title", "url", "page", "heading_path", "group_ids", "user_ids"}

_TERM = re.compile(r"[^\W_]+")  # runs of letters/digits: what the unicode61 tokenizer keeps


class StoreMismatchError(ConfigError):
    """The file was built by another embedding model (or dimensions, or schema): re-index into a new file."""


def not_a_file(path: Path) -> str | None:
    """What is wrong when `path` is there but is no file (a folder left by a mount or a copy): SQLite
    would only say "unable to open database file", which reads like a permission problem."""
    if not path.exists() or path.is_file():
        return None
    kind = "a folder" if path.is_dir() else "not a regular file"
    return (
        f"the local index {path} is {kind}, not an index file: move it away or set RAGBOT_DATA_DIR elsewhere"
    )


class StoreUnreadableError(ConfigError):
    """The file cannot be opened (permissions, a write-ahead log that cannot be read): names the file and
    the directory, and what to change."""


class FileChange(BaseModel):
    """What `replace_file` did, counted by chunk id."""

    added: int = 0
    updated: int = 0
    deleted: int = 0


def query_terms(text: str) -> list[str]:
    """The distinct letter/digit runs of `text`, lower-cased, at most `MAX_QUERY_TERMS`."""
    return list(dict.fromkeys(term.lower() for term in _TERM.findall(text)))[:MAX_QUERY_TERMS]


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class LocalStore:
    """One SQLite file of chunks searchable by keywords (FTS5 bm25) and by vector (exact cosine)."""

    def __init__(
        self,
        path: Path,
        *,
        dimensions: int = DIMENSIONS,
        embedder_name: str = MODEL_NAME,
        read_only: bool = False,
    ) -> None:
        if dimensions < 1:
            raise ValueError(f"dimensions must be positive, got {dimensions}")
        self.path = Path(path)
        self.dimensions = dimensions
        self.embedder_name = embedder_name
        self.read_only = read_only
        self.immutable = False  # read without locks or a WAL: the directory is not writable
        self._lock = threading.RLock()
        self._terms: sqlite3.Connection | None = None  # in-memory FTS5 table used as the index's tokenizer
        self._db, self._identity = self._connect()
        self._forget()

    def _connect(self) -> tuple[sqlite3.Connection, tuple[int, ...]]:
        """Open the file and check it was built for this embedder (a writer creates the schema if needed)."""
        problem = not_a_file(self.path)
        if problem:
            raise StoreUnreadableError(problem)
        if self.read_only:
            return self._connect_reader()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.OperationalError) as exc:
            raise self._unwritable(exc) from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            for statement in _split_script(_SCHEMA):
                db.execute(statement)
            if "root" not in {row[1] for row in db.execute("PRAGMA table_info(files)")}:
                db.execute("ALTER TABLE files ADD COLUMN root TEXT")  # an index built before roots were kept
            self._check_meta(db)
            db.execute("COMMIT")
            stat = os.stat(self.path)
        except sqlite3.OperationalError as exc:
            db.close()
            if "readonly" in str(exc) or "unable to open" in str(exc):
                raise self._unwritable(exc) from None
            raise
        except BaseException:
            db.close()
            raise
        return db, (stat.st_dev, stat.st_ino)

    def _unwritable(self, exc: Exception) -> StoreUnreadableError:
        reason = getattr(exc, "strerror", None) or str(exc)
        return StoreUnreadableError(
            f"cannot write the local index {self.path}: {reason} "
            f"(the directory {self.path.parent} must be writable by this user to build or update it)"
        )

    def _connect_reader(self) -> tuple[sqlite3.Connection, tuple[int, ...]]:
        """Open for reading only. With the WAL's files missing and not creatable (a read-only directory),
        every committed row is in the main file: it is then read as immutable."""
        self.immutable = False
        try:
            return self._open_reader("mode=ro")
        except sqlite3.OperationalError as exc:
            wal = Path(f"{self.path}-wal")
            if not self.path.is_file() or (wal.exists() and wal.stat().st_size > 0):
                raise self._unreadable(exc) from None
        self.immutable = True
        try:
            return self._open_reader("mode=ro&immutable=1")
        except sqlite3.OperationalError as exc:
            raise self._unreadable(exc) from None

    def _open_reader(self, options: str) -> tuple[sqlite3.Connection, tuple[int, ...]]:
        uri = f"{self.path.absolute().as_uri()}?{options}"
        stat = os.stat(self.path)  # before opening: a file replaced meanwhile is noticed at the next read
        db = sqlite3.connect(
            uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            self._check_meta(db)
        except BaseException:
            db.close()
            raise
        identity: tuple[int, ...] = (stat.st_dev, stat.st_ino)
        if self.immutable:  # no change counter to watch: a rewrite in place must show in the file's stat
            identity += (stat.st_size, stat.st_mtime_ns)
        return db, identity

    def _unreadable(self, exc: Exception) -> StoreUnreadableError:
        directory = self.path.parent
        writable = "writable" if os.access(directory, os.W_OK) else "not writable"
        return StoreUnreadableError(
            f"cannot read the local index {self.path}: {exc} (the directory {directory} is {writable}; "
            "a reader needs the index file readable and, when it has a write-ahead log "
            f"{PurePath(self.path).name}-wal, that log and its -shm file readable or the directory writable)"
        )

    def _forget(self) -> None:
        """Drop every cache of the file's content (they are valid while PRAGMA data_version stays put)."""
        self._version: int | None = None
        self._changed = False  # our own commits do not move data_version
        self._vectors = VectorIndex(self.dimensions)
        self._vectors_current = False
        self._frequencies: dict[str, int] = {}
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._posted = 0  # pairs held in _postings
        self._count: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._forget()
            if self._terms is not None:
                self._terms.close()
                self._terms = None

    def move_to(self, path: Path) -> None:
        """Close the store and put its file at `path` in one rename: a rebuilt index replacing the old one.

        The file is first made whole (rollback-journal mode folds the WAL in and removes it) and flushed to
        disk; the old index's `-wal`/`-shm` are removed just before the rename, as SQLite would read them as
        the new file's. Readers keep their open copy of the old file until their next search, then open the
        new one; the next writer turns WAL mode back on.
        """
        with self._lock:
            (mode,) = self._db.execute("PRAGMA journal_mode=DELETE").fetchone()
            if mode != "delete":
                raise RuntimeError(f"cannot finish {self.path}: it is still open elsewhere")
            self.close()
            with self.path.open("rb") as built:
                os.fsync(built.fileno())
            target = Path(path)
            for suffix in ("-wal", "-shm"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            os.replace(self.path, target)
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself survives a power cut
            finally:
                os.close(directory)
            self.path = target

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One IMMEDIATE transaction (takes the write lock up front, waiting up to the busy timeout)."""
        with self._lock:
            self._follow_file()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._changed = True

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """One read transaction, so several statements see one snapshot of the file (nests)."""
        if self._db.in_transaction:
            yield
            return
        self._follow_file()
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _follow_file(self) -> None:
        """Reopen if the file was replaced (`ragbot index --recreate` deletes and rebuilds it): the old
        connection would otherwise keep serving the deleted copy forever. Not inside a transaction: the
        next one reopens."""
        if self._db.in_transaction:
            return
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return  # deleted and not yet rebuilt: keep serving what we have
        seen = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if seen[: len(self._identity)] != self._identity:
            db, identity = self._connect()  # if this fails (e.g. another embedder) the old copy stays open
            self._db.close()  # SQLite leaves the new file's WAL alone: it sees the old file was unlinked
            self._db, self._identity = db, identity
            self._forget()

    def _check_meta(self, db: sqlite3.Connection) -> None:
        wanted = {
            "schema_version": SCHEMA_VERSION,
            "embedder": self.embedder_name,
            "dimensions": str(self.dimensions),
        }
        try:
            found = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            if "no such table" not in str(exc) and "not a database" not in str(exc):
                raise
            raise StoreMismatchError(
                f"{self.path} is not an index built by `ragbot index`: rebuild it with --recreate"
            ) from None
        if not found and not self.read_only:
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", wanted.items())
            return
        wrong = [
            f"{key} is {found.get(key)!r}, expected {value!r}"
            for key, value in wanted.items()
            if found.get(key) != value
        ]
        if wrong:
            raise StoreMismatchError(
                f"{self.path} was built differently ({'; '.join(wrong)}): "
                "re-index into a new file or use the embedding model it was built with"
            )

    # -- write side (indexing) ---------------------------------------------------------------------

    def file_hashes(self) -> dict[str, str]:
        """filepath -> content hash of every file in the store (to skip unchanged files)."""
        with self._lock:
            self._follow_file()
            return dict(self._db.execute("SELECT filepath, content_hash FROM files").fetchall())

    def file_roots(self) -> dict[str, str]:
        """filepath -> the absolute folder it is relative to, for files indexed since roots were kept."""
        with self._lock:
            self._follow_file()
            if "root" not in {row[1] for row in self._db.execute("PRAGMA table_info(files)")}:
                return {}  # opened read-only, as built before roots were kept
            rows = self._db.execute("SELECT filepath, root FROM files WHERE root IS NOT NULL")
            return dict(rows.fetchall())

    def set_roots(self, roots: dict[str, str]) -> None:
        """Record the folder of files already indexed (an index built before roots were kept)."""
        with self._write():
            self._db.executemany(
                "UPDATE files SET root = ? WHERE filepath = ?", [(r, f) for f, r in roots.items()]
            )

    def files(self) -> list[str]:
        with self._lock:
            self._follow_file()
            return [row[0] for row in self._db.execute("SELECT filepath FROM files ORDER BY filepath")]

    def file_chunks(self, filepath: str) -> list[Chunk]:
        """The chunks of one file, in document order (what the bot's source view shows)."""
        with self._lock, self._reading():
            rows = self._db.execute("SELECT data FROM chunks WHERE filepath = ?", (filepath,)).fetchall()
        chunks = [Chunk.model_validate_json(data) for (data,) in rows]
        return sorted(chunks, key=lambda chunk: int(chunk.chunk_id) if chunk.chunk_id.isdigit() else 0)

    def file_vectors(self) -> tuple[list[tuple[str, str]], np.ndarray]:
        """(filepath, title) of every public file and the unit mean of its chunks' vectors, one row each.
        Rows are read through a cursor, so memory holds the files' means, never the index's vectors."""
        files: list[tuple[str, str]] = []
        means: list[np.ndarray] = []
        with self._lock, self._reading():
            cursor = self._db.execute(
                "SELECT filepath, title, vector FROM chunks WHERE groups = '[]' ORDER BY filepath"
            )
            total = np.zeros(self.dimensions, dtype=np.float32)
            for filepath, title, blob in cursor:
                if not files or files[-1][0] != filepath:
                    if files:
                        means.append(total)
                    files.append((filepath, title))
                    total = np.zeros(self.dimensions, dtype=np.float32)
                total += np.frombuffer(blob, dtype="<f4")
            if files:
                means.append(total)
        matrix = np.array(means, dtype=np.float32).reshape(len(files), self.dimensions)
        return files, _normalised(matrix)

    def count(self) -> int:
        """Number of chunks."""
        with self._lock:
            self._sync()
            if self._count is None:
                self._count = int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])
            return self._count

    def replace_file(
        self,
        filepath: str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        *,
        content_hash: str | None = None,
        root: str | None = None,
    ) -> FileChange:
        """Make `chunks` the file's only chunks, in one transaction; chunks no longer produced are deleted.

        `vectors` has one row per chunk (normalised here). `content_hash` defaults to the chunks' own; pass
        it for a file that now yields no chunks so it is still remembered as indexed (without it, an empty
        replacement forgets the file). `root`: the absolute folder `filepath` is relative to (kept if None).
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(chunks), self.dimensions):
            raise ValueError(
                f"expected vectors of shape ({len(chunks)}, {self.dimensions}), got {vectors.shape}"
            )
        if not np.isfinite(vectors).all():
            raise ValueError("vectors contain NaN or infinity")
        hashes = {chunk.content_hash for chunk in chunks}
        if content_hash is not None:
            hashes.add(content_hash)
        if len(hashes) > 1:
            raise ValueError(f"chunks of {filepath} carry different content hashes: {sorted(hashes)}")
        ids = [chunk.id for chunk in chunks]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate chunk ids in {filepath}")
        strangers = sorted({chunk.filepath for chunk in chunks} - {filepath})
        if strangers:
            raise ValueError(f"chunks for {filepath} name other files: {strangers}")
        vectors = _normalised(vectors)

        change = FileChange()
        with self._write():
            existing = {
                row[0]: (row[1], row[2])
                for row in self._db.execute(
                    "SELECT id, row, data FROM chunks WHERE filepath = ?", (filepath,)
                )
            }
            taken = self._taken_elsewhere(filepath, ids)
            if taken:
                raise ValueError(f"chunk ids of {filepath} already belong to other files: {taken[:5]}")
            for chunk, vector in zip(chunks, vectors, strict=True):
                old = existing.pop(chunk.id, None)
                data = chunk.model_dump_json()
                if old is not None:
                    before = Chunk.model_validate_json(old[1])
                    if before.model_dump(include=_COMPARED_FIELDS) == chunk.model_dump(
                        include=_COMPARED_FIELDS
                    ):
                        self._db.execute("UPDATE chunks SET data = ? WHERE row = ?", (data, old[0]))
                        continue
                    self._db.execute("DELETE FROM chunks WHERE row = ?", (old[0],))
                    change.updated += 1
                else:
                    change.added += 1
                self._insert(chunk, data, vector)
            for row, _ in existing.values():
                self._db.execute("DELETE FROM chunks WHERE row = ?", (row,))
            change.deleted = len(existing)
            file_hash = next(iter(hashes), None)
            if file_hash is None:
                self._db.execute("DELETE FROM files WHERE filepath = ?", (filepath,))
            else:
                self._db.execute(
                    "INSERT INTO files (filepath, content_hash, root) VALUES (?, ?, ?) "
                    "ON CONFLICT (filepath) DO UPDATE SET content_hash = excluded.content_hash, "
                    "root = coalesce(excluded.root, root)",
                    (filepath, file_hash, root),
                )
        return change

    def delete_file(self, filepath: str) -> int:
        """Remove a file and its chunks; returns how many chunks went."""
        with self._write():
            deleted = self._db.execute("DELETE FROM chunks WHERE filepath = ?", (filepath,)).rowcount
            self._db.execute("DELETE FROM files WHERE filepath = ?", (filepath,))
        return int(deleted)

    def _taken_elsewhere(self, filepath: str, ids: list[str]) -> list[str]:
        if not ids:
            return []
        rows = self._db.execute(
            "SELECT id FROM chunks WHERE filepath != ? AND id IN (SELECT value FROM json_each(?))",
            (filepath, json.dumps(ids)),
        )
        return [row[0] for row in rows]

    def _insert(self, chunk: Chunk, data: str, vector: np.ndarray) -> None:
        self._db.execute(
            "INSERT INTO chunks (id, filepath, title, headings, content, groups, data, vector) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                chunk.id,
                chunk.filepath,
                chunk.title or "",
                " / ".join(chunk.heading_path),
                chunk.content,
                _access_json(chunk),
                data,
                vector.astype("<f4").tobytes(),
            ),
        )

    # -- read side (retrievers) --------------------------------------------------------------------

    def keyword_search(self, query: str, top: int, asker: Asker | None = None) -> list[ScoredChunk]:
        """The `top` best bm25 matches for any user text; score = -bm25, higher is better.

        The query is the text's distinct index terms OR-ed (the text is only tokenized, never parsed, so
        quotes and FTS5 operators are plain words; identifiers such as `0x80070005` stay one term), scored
        as FTS5's `bm25()` with `BM25_WEIGHTS`: a chunk matching only some terms still scores. Terms held
        by at least half of the chunks are left out when rarer ones remain: bm25 clamps their idf to ~0,
        so they add nothing to any score but their postings cover most of the index.
        `asker`: None = no security trimming (index maintenance; retrievers always pass one, `Asker()` for
        anonymous); otherwise public chunks and the restricted chunks the asker may see (`Asker`'s rule).
        """
        if top < 1:
            return []
        with self._lock, self._reading():
            index = self._current_vectors()
            terms = self._informative_terms(query)
            if not terms or not len(index):
                return []
            slots, scores = self._bm25(index, terms)
            allowed = index.allowed(_principals(asker))[slots]
            slots, scores = slots[allowed], scores[allowed]
            k = min(top, len(slots))
            if not k:
                return []
            best = np.argpartition(-scores, k - 1)[:k]
            best = best[np.lexsort((slots[best], -scores[best]))]  # a tie goes to the older row
            rows, scores = index.rows(slots[best]).tolist(), scores[best].tolist()
            found = dict(
                self._db.execute(
                    "SELECT row, data FROM chunks WHERE row IN (SELECT value FROM json_each(?))",
                    (json.dumps(rows),),
                ).fetchall()
            )
        return [  # all rows are found (one snapshot); the check only keeps a surprise from being a crash
            ScoredChunk(chunk=Chunk.model_validate_json(found[row]), score=score, query=query)
            for row, score in zip(rows, scores, strict=True)
            if row in found
        ]

    def _bm25(self, index: VectorIndex, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Slots of the rows with any of the index `terms` (ascending) and their scores, by FTS5's bm25:
        sum over terms of idf * f * (k1 + 1) / (f + k1 * (1 - b + b * length / average length)), f being
        the column-weighted count of the term in the row and idf log((N - n + 0.5) / (n + 0.5)), >= 1e-6."""
        postings = [self._term_postings(index, term) for term in terms]
        total = len(index)
        idf = [max(math.log((total - len(slots) + 0.5) / (len(slots) + 0.5)), 1e-6) for slots, _ in postings]
        slots = np.concatenate([slots for slots, _ in postings])
        counts = np.concatenate([counts for _, counts in postings])
        idfs = np.repeat(idf, [len(slots) for slots, _ in postings])
        lengths = index.sizes(slots) / index.average_size
        parts = idfs * counts * (BM25_K1 + 1) / (counts + BM25_K1 * (1 - BM25_B + BM25_B * lengths))
        unique, inverse = np.unique(slots, return_inverse=True)
        return unique, np.bincount(inverse, weights=parts, minlength=len(unique))

    def _term_postings(self, index: VectorIndex, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Slots in `index` of the rows holding the index `term` (ascending) and its column-weighted count
        in each. Read in the snapshot `index` was caught up to and kept until the file changes (slots stay
        valid as long), the least recently used dropped past `POSTINGS_CACHE` pairs."""
        found = self._postings.pop(term, None)
        if found is None:
            self._vocabulary()
            # one string of row * 4 + column number rather than a Python tuple per occurrence: a common term
            # occurs tens of thousands of times
            (codes,) = self._db.execute(
                f"SELECT group_concat(doc * 4 + {_COLUMN_NUMBER}, ' ') FROM temp.instances WHERE term = ?",
                (term,),
            ).fetchone()
            occurrences = np.fromstring(codes or "", dtype=np.int64, sep=" ")
            weights = np.array([0.0, *BM25_WEIGHTS.values()])[occurrences & 3]
            rows, inverse = np.unique(occurrences >> 2, return_inverse=True)
            counts = np.bincount(inverse, weights=weights, minlength=len(rows)).astype(np.float32)
            slots, held = index.slots(rows)  # all of them, as the index was read in the same snapshot
            found = slots[held].astype(np.int32), counts[held]
            self._posted += len(found[0])
            while self._posted > POSTINGS_CACHE and self._postings:
                self._posted -= len(self._postings.pop(next(iter(self._postings)))[0])
        self._postings[term] = found  # most recently used last
        return found

    def vector_search(self, vector: np.ndarray, top: int, asker: Asker | None = None) -> list[ScoredChunk]:
        """The `top` nearest chunks by cosine similarity (exact); `asker` trims as in `keyword_search`."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape != (self.dimensions,):
            raise ValueError(f"expected a vector of {self.dimensions} dimensions, got {query.shape[0]}")
        with self._lock:
            best = dict(
                self._current_vectors().search(
                    _normalised(query), top, _principals(asker), exact=self._stored_vectors
                )
            )
            found = dict(
                self._db.execute(
                    "SELECT row, data FROM chunks WHERE row IN (SELECT value FROM json_each(?))",
                    (json.dumps(list(best)),),
                ).fetchall()
            )
        # a row may be gone if another process committed after the refresh: it is skipped
        return [
            ScoredChunk(chunk=Chunk.model_validate_json(found[row]), score=score)
            for row, score in best.items()
            if row in found
        ]

    def _stored_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The float32 vectors of store `rows`, in order (zeros for a row gone since the catch-up): what
        the in-memory int8 candidates are scored on exactly."""
        found = dict(
            self._db.execute(
                "SELECT row, vector FROM chunks WHERE row IN (SELECT value FROM json_each(?))",
                (json.dumps(rows.tolist()),),
            ).fetchall()
        )
        zero = bytes(4 * self.dimensions)
        blob = b"".join(found.get(row, zero) for row in rows.tolist())
        return np.frombuffer(blob, dtype="<f4").reshape(len(rows), self.dimensions)

    def index_terms(self, text: str) -> list[str]:
        """`text` as the keyword index sees it: lower-cased, porter-stemmed terms in order (FTS5's own
        tokenizer, so they compare equal to what `document_frequencies` counts)."""
        return self._tokenized([text])[0]

    def _tokenized(self, texts: Sequence[str]) -> list[list[str]]:
        """`index_terms` of each text, in one tokenizer pass."""
        found: list[list[str]] = [[] for _ in texts]
        with self._lock:
            tokenizer = self._tokenizer()
            tokenizer.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", enumerate(texts, start=1))
            for doc, term in tokenizer.execute("SELECT doc, term FROM v ORDER BY doc, offset"):
                found[int(doc) - 1].append(term)
            tokenizer.execute("DELETE FROM t")
        return found

    def terms_present(self, texts: Sequence[str], terms: Sequence[str]) -> list[set[str]]:
        """For each text, which of the index `terms` it contains (one tokenizer pass for all texts)."""
        found: list[set[str]] = [set() for _ in texts]
        if not texts or not terms:
            return found
        with self._lock:
            tokenizer = self._tokenizer()
            tokenizer.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", enumerate(texts, start=1))
            rows = tokenizer.execute(
                "SELECT DISTINCT doc, term FROM v WHERE term IN (SELECT value FROM json_each(?))",
                (json.dumps(list(terms)),),
            ).fetchall()
            tokenizer.execute("DELETE FROM t")
        for doc, term in rows:
            found[int(doc) - 1].add(term)
        return found

    def _tokenizer(self) -> sqlite3.Connection:
        """An in-memory FTS5 table with the index's tokenizer, used to see text as the index does."""
        if self._terms is None:
            self._terms = sqlite3.connect(":memory:", check_same_thread=False)
            self._terms.execute("CREATE VIRTUAL TABLE t USING fts5 (x, tokenize='porter unicode61')")
            self._terms.execute("CREATE VIRTUAL TABLE v USING fts5vocab (t, instance)")
        return self._terms

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each index term (from `index_terms`); a term found nowhere maps to 0.

        Cached until the file changes: counting a common term reads its whole posting list.
        """
        wanted = list(dict.fromkeys(terms))
        with self._lock:
            self._sync()
            missing = [term for term in wanted if term not in self._frequencies]
            if missing:
                self._vocabulary()
                counts = dict(
                    self._db.execute(
                        "SELECT term, doc FROM temp.vocab WHERE term IN (SELECT value FROM json_each(?))",
                        (json.dumps(missing),),
                    ).fetchall()
                )
                if len(self._frequencies) > FREQUENCY_CACHE:
                    self._frequencies.clear()
                self._frequencies.update({term: int(counts.get(term, 0)) for term in missing})
            return {term: self._frequencies[term] for term in wanted}

    def held_publicly(self, term: str) -> bool:
        """Whether a chunk everyone may see holds the index `term`: what a spelling correction, shown to any
        asker, may use (a word only restricted documents hold would tell that they exist)."""
        with self._lock, self._reading():
            index = self._current_vectors()
            slots, _ = self._term_postings(index, term)
            return bool(index.allowed([])[slots].any())

    def terms_with_prefix(self, prefix: str, limit: int = 500) -> dict[str, int]:
        """Index terms starting with `prefix` (at most `limit`) and how many chunks hold each: the
        candidates a misspelt query term ("pasword") is matched against."""
        if not prefix:
            return {}
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        with self._lock:
            self._vocabulary()
            rows = self._db.execute(
                "SELECT term, doc FROM temp.vocab WHERE term >= ? AND term < ? LIMIT ?",
                (prefix, upper, limit),
            ).fetchall()
        return {term: int(doc) for term, doc in rows}

    def _vocabulary(self) -> None:
        """FTS5's views of the index's terms: per term (`vocab`) and per occurrence (`instances`)."""
        for name, kind in (("vocab", "row"), ("instances", "instance")):
            self._db.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{name} USING fts5vocab (main, chunks_fts, {kind})"
            )

    def _informative_terms(self, query: str) -> list[str]:
        """The index terms of the query minus those held by half the chunks or more (unless nothing else
        is left)."""
        terms = list(dict.fromkeys(term for found in self._tokenized(query_terms(query)) for term in found))
        if len(terms) < 2:
            return terms
        frequencies = self.document_frequencies(terms)
        half = self.count() / 2
        return [term for term in terms if frequencies[term] < half] or terms

    def _sync(self) -> None:
        """Notice commits (ours or another process's) since the last search: caches are then out of date."""
        self._follow_file()
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if self._changed or version != self._version:
            self._version, self._changed = version, False
            self._frequencies.clear()
            self._postings.clear()
            self._posted = 0
            self._count = None
            self._vectors_current = False

    def _current_vectors(self) -> VectorIndex:
        """The in-memory vectors, caught up with the file (only new and vanished rows are read)."""
        self._sync()
        if self._vectors_current:
            return self._vectors
        index = self._vectors
        held = len(index)
        with self._reading():  # one snapshot for every read
            total = int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])
            cursor = self._db.execute(
                "SELECT row, groups, vector, sz FROM chunks LEFT JOIN chunks_fts_docsize AS d ON d.id = row "
                "WHERE row > ? ORDER BY row",
                (index.last_row,),
            )
            added = 0
            # a batch at a time: 50k new rows read at once held ~85 MB of Python objects besides the index
            while batch := cursor.fetchmany(CATCH_UP_BATCH):
                index.apply(
                    gone=np.empty(0, dtype=np.int64),
                    added_rows=[row for row, _, _, _ in batch],
                    added_vectors=[vector for _, _, vector, _ in batch],
                    added_access=[_access(groups) for _, groups, _, _ in batch],
                    added_sizes=[_token_count(sizes) for _, _, _, sizes in batch],
                )
                added += len(batch)
            if total != held + added:  # some rows we hold were deleted: find which
                present = np.fromiter(
                    (r for (r,) in self._db.execute("SELECT row FROM chunks")), dtype=np.int64
                )
                live = index.live_rows()
                index.apply(live[~np.isin(live, present, assume_unique=True)], [], [], [], [])
        self._vectors_current = True
        return index


def _access_json(chunk: Chunk) -> str:
    """The `groups` column of a chunk: a list of group ids when it names no users (what indexes built
    before users were kept hold), else an object with both."""
    groups = sorted(set(chunk.group_ids))
    if not chunk.user_ids:
        return json.dumps(groups)
    return json.dumps({"groups": groups, "users": sorted(set(chunk.user_ids))})


def _access(column: str) -> tuple[Principal, ...]:
    """A row's access list from its `groups` column (empty: public)."""
    if column == "[]":
        return ()
    found = json.loads(column)
    groups, users = (found, []) if isinstance(found, list) else (found["groups"], found["users"])
    return tuple(("group", canonical_id(str(g))) for g in groups) + tuple(
        ("user", canonical_id(str(u))) for u in users
    )


def _principals(asker: Asker | None) -> list[Principal] | None:
    return None if asker is None else asker.principals


def _token_count(sizes: bytes | None) -> int:
    """Tokens of a row from its FTS5 docsize record: one SQLite varint per column (7 bits a byte, high bit
    set on all but the last byte of each)."""
    total = value = 0
    for byte in sizes or b"":
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            total, value = total + value, 0
    return total


def _split_script(script: str) -> list[str]:
    """Statements of `_SCHEMA` (executescript would commit the surrounding transaction)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.strip().splitlines():
        current.append(line)
        joined = "\n".join(current)
        if line.rstrip().endswith(";") and sqlite3.complete_statement(joined):
            statements.append(joined)
            current = []
    return statements
