"""The SQLite catalogue: every image file, its metadata, its vector, and a change log.

It is the source of truth. Every write is one transaction that also bumps ``generation``;
vectors and removals carry the generation that wrote them, so a vector index saved at an
older generation can be brought up to date by replaying only what changed since.

The ``images`` table's columns come from :class:`~lookalike.store.record.ImageRecord`.
``schema_version`` in ``meta`` is checked on every open: an older catalogue is migrated in
one transaction, a newer one is refused, so an old index never meets new code by surprise.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from lookalike.decode.image import ImageMeta
from lookalike.embed.classes import TopClasses
from lookalike.embed.local_features import LocalFeatures
from lookalike.errors import LookalikeError, StoreError
from lookalike.files.paths import from_stored, to_stored
from lookalike.search.filters import Filters
from lookalike.store.codec import CODECS, VectorCodec
from lookalike.store.record import (
    META_FIELDS,
    RECORD_FIELDS,
    ImageRecord,
    column_definitions,
    record_from_row,
)
from lookalike.store.whitening import Whitening

# 3: images.warnings (decode warnings), added by _migrate_from_v1; 4: the classes table;
# 5: vector_file_samples (sampled checksums of large bases), vector_index 'faiss';
# 6: the not_duplicates table (verdicts of ``lookalike dupes``);
# 7: the local_features table (spatial re-ranking)
SCHEMA_VERSION = 7
COLUMNS = ", ".join(RECORD_FIELDS)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    {", ".join(column_definitions())},
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_status ON images (status);
CREATE TABLE IF NOT EXISTS vectors (
    id         INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    vector     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_generation ON vectors (generation);
CREATE TABLE IF NOT EXISTS removed (id INTEGER NOT NULL, generation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_generation ON removed (generation);
-- The sha256 of each saved vector cache file, written before the file takes its name.
CREATE TABLE IF NOT EXISTS vector_files (generation INTEGER PRIMARY KEY, sha256 TEXT NOT NULL);
-- ... and of its sampled blocks (vectors.sampled_sha256), checked on open instead of every byte.
CREATE TABLE IF NOT EXISTS vector_file_samples (
    generation INTEGER PRIMARY KEY,
    sha256     TEXT NOT NULL
);
-- A learned transform of the stored vectors (PCA-whitening), applied to them and to queries.
CREATE TABLE IF NOT EXISTS whitening (one INTEGER PRIMARY KEY CHECK (one = 1), data BLOB NOT NULL);
-- Each embedded image's top ImageNet classes (uint16 ids, float16 probabilities), for search
-- by words. Images indexed before it (or by a model without a classifier) have none.
CREATE TABLE IF NOT EXISTS classes (id INTEGER PRIMARY KEY, ids BLOB NOT NULL, probs BLOB NOT NULL);
-- Pairs of images a person said are not duplicates (a < b), so that rescans do not group them.
CREATE TABLE IF NOT EXISTS not_duplicates (
    a INTEGER NOT NULL, b INTEGER NOT NULL, PRIMARY KEY (a, b), CHECK (a < b)
);
-- Each embedded image's local features (float16 cell positions and descriptors), for spatial
-- re-ranking. Images indexed before it (or by a model without them) have none.
CREATE TABLE IF NOT EXISTS local_features (
    id INTEGER PRIMARY KEY, positions BLOB NOT NULL, descriptors BLOB NOT NULL
);
"""


class SchemaVersionError(LookalikeError):
    """The catalogue was written by a newer lookalike than this one."""


@dataclass(frozen=True)
class Upsert:
    """A file to insert or update: how ``stat`` saw it, and its vector and metadata when it
    was embedded, else the reason it was skipped."""

    path: str
    size: int
    mtime_ns: int
    vector: np.ndarray | None  # float32 (dim,); None when skipped
    reason: str | None = None
    meta: ImageMeta | None = None
    classes: TopClasses | None = None  # its top ImageNet classes, when the model has them
    local_features: LocalFeatures | None = None  # for spatial re-ranking, when the model has them


class CatalogueDamagedError(StoreError):
    """The catalogue file is not a readable SQLite database (truncated, zeroed, garbage)."""


T = TypeVar("T")


def _translate(exc: sqlite3.Error, path: Path) -> StoreError:
    """One clear error for what SQLite raised, naming the file and what to do."""
    name = getattr(exc, "sqlite_errorname", "")
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in str(exc):
        return _damaged(path, str(exc))
    if name == "SQLITE_READONLY" or "readonly" in str(exc):
        return StoreError(f"index {path.parent} is read-only for this user: {exc}")
    return StoreError(f"cannot use {path}: {exc}")


def _damaged(path: Path, reason: str) -> CatalogueDamagedError:
    index = path.parent
    return CatalogueDamagedError(
        f"{path} is damaged ({reason}): 'lookalike check --index {index}' reports what can be "
        f"saved and 'lookalike check --repair --index {index}' saves it, or use a copy made "
        "by 'lookalike backup'"
    )


def _sqlite_errors(cls: type[T]) -> type[T]:
    """Wrap every public method of ``cls`` so that SQLite's errors leave as StoreError."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def generator(self: Catalogue, *args: Any, **kwargs: Any) -> Iterator[Any]:
                try:
                    yield from fn(self, *args, **kwargs)
                except sqlite3.Error as exc:
                    raise _translate(exc, self.path) from exc

            return generator

        @functools.wraps(fn)
        def function(self: Catalogue, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc

        return function

    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(member) and name != "transaction":
            setattr(cls, name, wrap(member))
    return cls


@_sqlite_errors
class Catalogue:
    """Typed access to the SQLite file. WAL mode: readers never wait for the writer.

    A user who may not write the index (a read-only share, another user's index) opens it
    read-only; every SQLite error leaves as a one-line :class:`StoreError`."""

    def __init__(self, path: Path, page_size: int | None = None) -> None:
        """``page_size``: bytes of a SQLite page of a new file (else SQLite's 4,096)."""
        self.path = path
        existed = path.exists()
        self.writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
        try:
            self.conn = self._connect(page_size)
            if existed:  # a damaged header or first page fails here rather than later
                self.meta()
        except sqlite3.Error as exc:
            if "no such table" in str(exc):  # an empty or foreign SQLite file
                raise _damaged(path, f"not a lookalike catalogue: {exc}") from exc
            raise _translate(exc, path) from exc

    def _connect(self, page_size: int | None) -> sqlite3.Connection:
        def connect(target: str | Path, uri: bool = False) -> sqlite3.Connection:
            # Shared between a server's threads; the store serialises access with its mutex.
            return sqlite3.connect(
                target, timeout=30.0, isolation_level=None, check_same_thread=False, uri=uri
            )

        if self.writable or not self.path.exists():
            conn = connect(self.path)
            if page_size:  # only a new file takes it, and only before WAL writes the header
                conn.execute(f"PRAGMA page_size={int(page_size)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints, never corrupt
            return conn
        uri = self.path.resolve().as_uri()
        try:
            conn = connect(f"{uri}?mode=ro", uri=True)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            # WAL needs its -shm file; where it cannot be made, read the file as it is.
            return connect(f"{uri}?mode=ro&immutable=1", uri=True)

    def initialise(self, meta: dict[str, str]) -> None:
        self.conn.executescript(SCHEMA)  # executescript commits on its own
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [
                    *meta.items(),
                    ("generation", "0"),
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("index_uid", uuid.uuid4().hex),
                ],
            )

    def ensure_version(self) -> int:
        """Migrate an older catalogue to this version; refuse a newer one. Returns the
        version found on open."""
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"index {self.path.parent} was made by a newer lookalike (schema {version}, "
                f"this one reads up to {SCHEMA_VERSION}); upgrade lookalike to use it"
            )
        if version < SCHEMA_VERSION:
            if not self.writable:
                raise StoreError(
                    f"index {self.path.parent} was made by an older lookalike and needs a "
                    "one-time upgrade: open it once as a user who may write it "
                    f"(lookalike info --index {self.path.parent})"
                )
            with self.transaction() as tx:
                if self.schema_version() < SCHEMA_VERSION:  # not migrated meanwhile
                    _migrate_from_v1(tx)
        return version

    def schema_version(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 1

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # reads

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def generation(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def count(self, status: str = "ok") -> int:
        row = self.conn.execute("SELECT count(*) FROM images WHERE status = ?", (status,))
        return int(row.fetchone()[0])

    def stat_map(self) -> dict[str, tuple[int, int, int]]:
        """path -> (id, size, mtime_ns) for every file, to tell changed from unchanged."""
        rows = self.conn.execute("SELECT path, id, size, mtime_ns FROM images")
        return {from_stored(path): (id_, size, mtime) for path, id_, size, mtime in rows}

    def records(self, ids: Sequence[int]) -> dict[int, ImageRecord]:
        found: dict[int, ImageRecord] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT {COLUMNS} FROM images WHERE id IN ({marks})", chunk
            ):
                record = _record(row)
                found[record.id] = record
        return found

    def record_by_path(self, path: str) -> ImageRecord | None:
        row = self.conn.execute(f"SELECT {COLUMNS} FROM images WHERE path = ?", (to_stored(path),))
        found = row.fetchone()
        return _record(found) if found else None

    def iter_records(self, status: str | None = None) -> Iterator[ImageRecord]:
        query = f"SELECT {COLUMNS} FROM images"
        rows = (
            self.conn.execute(query + " WHERE status = ? ORDER BY id", (status,))
            if status
            else self.conn.execute(query + " ORDER BY id")
        )
        for row in rows:
            yield _record(row)

    def matching_ids(self, filters: Filters) -> np.ndarray:
        """Ids of the embedded images that pass ``filters`` (int64, ascending)."""
        where: list[str] = ["status = 'ok'"]
        params: list[object] = []
        if filters.folder:
            # Whole folder names: the folder itself, or a path under "folder/": the range
            # ["folder/", "folder0") uses the path index, as '0' follows '/'.
            folder = to_stored(filters.folder)
            prefix = folder.rstrip("/") + "/"
            where.append("(path = ? OR (path >= ? AND path < ?))")
            params += [folder, prefix, prefix[:-1] + "0"]
        if filters.min_width:
            where.append("width >= ?")
            params.append(filters.min_width)
        if filters.min_height:
            where.append("height >= ?")
            params.append(filters.min_height)
        if filters.taken_after:
            where.append("taken_at IS NOT NULL AND substr(taken_at, 1, 10) >= ?")
            params.append(filters.taken_after.isoformat())
        if filters.taken_before:
            where.append("taken_at IS NOT NULL AND substr(taken_at, 1, 10) <= ?")
            params.append(filters.taken_before.isoformat())
        rows = self.conn.execute(f"SELECT id FROM images WHERE {' AND '.join(where)}", params)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64)
        if filters.ids is not None:
            ids = ids[np.isin(ids, np.fromiter(filters.ids, dtype=np.int64))]
        return np.sort(ids)

    def class_table(self, ids: np.ndarray | None = None) -> ClassTable:
        """The stored top classes of every embedded image (of ``ids`` only, if given)."""
        rows = self.conn.execute(
            "SELECT c.id, c.ids, c.probs FROM classes c JOIN images i ON i.id = c.id "
            "WHERE i.status = 'ok' ORDER BY c.id"
        ).fetchall()
        table = ClassTable.of(rows)
        return table if ids is None else table.subset(ids)

    def unclassified_paths(self) -> set[str]:
        """Paths of the embedded images that have no classes stored."""
        rows = self.conn.execute(
            "SELECT path FROM images WHERE status = 'ok' AND id NOT IN (SELECT id FROM classes)"
        )
        return {from_stored(r[0]) for r in rows}

    def not_duplicate_pairs(self) -> set[tuple[int, int]]:
        """Every (a, b), a < b, that a person said is not a pair of duplicates."""
        return {(a, b) for a, b in self.conn.execute("SELECT a, b FROM not_duplicates")}

    def local_features(self, ids: Sequence[int]) -> dict[int, LocalFeatures]:
        """The stored local features of these images (those that have them)."""
        found: dict[int, LocalFeatures] = {}
        unique = list(dict.fromkeys(int(i) for i in ids))
        for start in range(0, len(unique), 500):  # SQLite's bound-parameter limit
            chunk = unique[start : start + 500]
            rows = self.conn.execute(
                "SELECT id, positions, descriptors FROM local_features "
                f"WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            found.update((r[0], LocalFeatures.from_bytes(r[1], r[2])) for r in rows)
        return found

    def whitening(self) -> Whitening | None:
        row = self.conn.execute("SELECT data FROM whitening").fetchone()
        return Whitening.from_bytes(row[0]) if row else None

    @functools.cached_property
    def codec(self) -> VectorCodec:
        """How vectors are stored (meta ``vector_codec``: float32, or compact 'u5')."""
        name = self.meta().get("vector_codec", "float32")
        if name not in CODECS:
            raise LookalikeError(
                f"index {self.path.parent} stores vectors as {name!r}, which "
                "this lookalike cannot read"
            )
        return CODECS[name]

    @functools.cached_property
    def dim(self) -> int:
        return int(self.meta()["dim"])

    def _decode(self, blobs: list[bytes]) -> np.ndarray:
        return self.codec.decode(blobs, self.dim)

    def vector(self, image_id: int) -> np.ndarray | None:
        row = self.conn.execute("SELECT vector FROM vectors WHERE id = ?", (image_id,)).fetchone()
        return self._decode([row[0]])[0] if row else None

    def vectors_since(self, generation: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Chunks of (ids int64 (n,), vectors float32 (n, d)) written after ``generation``.

        No ``ORDER BY``: it would make SQLite scan the whole table instead of the generation
        index, and replaying needs no order."""
        rows = self.conn.execute(
            "SELECT id, vector FROM vectors WHERE generation > ?", (generation,)
        )
        while chunk := rows.fetchmany(4096):
            ids = np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk))
            yield ids, self._decode([r[1] for r in chunk])

    def ids_changed_since(self, generation: int) -> np.ndarray:
        """Ids whose vectors were removed or replaced after ``generation`` (int64)."""
        rows = self.conn.execute(
            "SELECT id FROM removed WHERE generation > ? "
            "UNION SELECT id FROM vectors WHERE generation > ?",
            (generation, generation),
        ).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def vector_file_checksum(self, generation: int) -> str | None:
        row = self.conn.execute(
            "SELECT sha256 FROM vector_files WHERE generation = ?", (generation,)
        ).fetchone()
        return str(row[0]) if row else None

    def vector_file_sample(self, generation: int) -> str | None:
        row = self.conn.execute(
            "SELECT sha256 FROM vector_file_samples WHERE generation = ?", (generation,)
        ).fetchone()
        return str(row[0]) if row else None

    def vectors_of(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 (m,), vectors float32 (m, dim)) of those of ``ids`` that have a stored
        vector, ascending by id."""
        rows: list[tuple[int, bytes]] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows += self.conn.execute(
                f"SELECT id, vector FROM vectors WHERE id IN ({marks})", chunk
            ).fetchall()
        rows.sort()
        found = np.fromiter((i for i, _ in rows), np.int64, len(rows))
        return found, self._decode([blob for _, blob in rows])

    def recall(self) -> tuple[float, int, str] | None:
        """The last measured recall@10 of the vector index: (recall, generation, how)."""
        meta = self.meta()
        if "recall_at_10" not in meta:
            return None
        return float(meta["recall_at_10"]), int(meta["recall_generation"]), meta["recall_how"]

    def removal_log_since(self) -> int:
        """The generation from which the removal log is complete."""
        return int(self.meta().get("removed_log_since", "0"))

    # writes (the caller holds the writer lock)

    def apply(self, upserts: Iterable[Upsert], removals: Iterable[str], model_id: str) -> int:
        """Write files and removals in one transaction; returns the new generation."""
        now = time.time()
        columns = ("path", "size", "mtime_ns", "status", "reason", *META_FIELDS, "model_id")
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*columns[1:], "indexed_at"))
        upsert_sql = (
            f"INSERT INTO images ({', '.join(columns)}, indexed_at) "
            f"VALUES ({', '.join('?' * (len(columns) + 1))}) "
            f"ON CONFLICT (path) DO UPDATE SET {updates} RETURNING id"
        )
        with self.transaction() as tx:
            generation = self.generation() + 1
            for path in removals:
                stored = to_stored(path)
                row = tx.execute("SELECT id FROM images WHERE path = ?", (stored,)).fetchone()
                if row:
                    tx.execute("DELETE FROM images WHERE id = ?", row)
                    tx.execute("DELETE FROM vectors WHERE id = ?", row)
                    tx.execute("DELETE FROM classes WHERE id = ?", row)
                    tx.execute("DELETE FROM not_duplicates WHERE a = ?1 OR b = ?1", row)
                    tx.execute("DELETE FROM local_features WHERE id = ?", row)
                    tx.execute(
                        "INSERT INTO removed (id, generation) VALUES (?, ?)", (row[0], generation)
                    )
            for u in upserts:
                embedded = u.vector is not None
                meta = u.meta or ImageMeta()
                values = (
                    to_stored(u.path),
                    u.size,
                    u.mtime_ns,
                    "ok" if embedded else "skipped",
                    u.reason,
                    *(getattr(meta, name) for name in META_FIELDS),
                    model_id if embedded else None,
                    now,
                )
                row = tx.execute(upsert_sql, values).fetchone()
                _write_classes(tx, row[0], u.classes)
                _write_local_features(tx, row[0], u.local_features)
                if u.vector is not None:
                    (blob,) = self.codec.encode(u.vector[None])
                    tx.execute(
                        "INSERT OR REPLACE INTO vectors (id, generation, vector) VALUES (?, ?, ?)",
                        (row[0], generation, blob),
                    )
                elif tx.execute("DELETE FROM vectors WHERE id = ?", row).rowcount:
                    # a file that was embedded and is now unreadable loses its vector
                    tx.execute(
                        "INSERT INTO removed (id, generation) VALUES (?, ?)", (row[0], generation)
                    )
            tx.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),))
        return generation

    def set_classes(self, items: Iterable[tuple[str, TopClasses]]) -> int:
        """Store the classes of files already embedded (by path; vectors untouched); returns
        the new generation."""
        with self.transaction() as tx:
            generation = self.generation() + 1
            for path, classes in items:
                row = tx.execute("SELECT id FROM images WHERE path = ?", (to_stored(path),))
                found = row.fetchone()
                if found:
                    _write_classes(tx, found[0], classes)
            tx.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),))
        return generation

    def add_not_duplicates(self, ids: Sequence[int]) -> int:
        """Record every pair of ``ids`` as not duplicates; returns the new generation."""
        unique = sorted(set(ids))
        pairs = [(a, b) for i, a in enumerate(unique) for b in unique[i + 1 :]]
        with self.transaction() as tx:
            generation = self.generation() + 1
            tx.executemany("INSERT OR IGNORE INTO not_duplicates (a, b) VALUES (?, ?)", pairs)
            tx.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),))
        return generation

    def set_whitening(
        self, whitening: Whitening | None, base: tuple[str, str | None] | None = None
    ) -> int:
        """Store (or drop) the whitening; returns the new generation.

        Every vector in the index changes with it, so the removal log restarts here: a vector
        index from before cannot be patched and rebuilds from the stored vectors. ``base``:
        the checksums (as :meth:`record_vector_file` takes them) of the base already built
        for it at the new generation, recorded in the same transaction.
        """
        with self.transaction() as tx:
            generation = self.generation() + 1
            tx.execute("DELETE FROM whitening")
            if whitening is not None:
                tx.execute(
                    "INSERT INTO whitening (one, data) VALUES (1, ?)", (whitening.to_bytes(),)
                )
            tx.execute("DELETE FROM removed")
            tx.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("generation", str(generation)), ("removed_log_since", str(generation))],
            )
            if base is not None:
                self._record_vector_file(tx, generation, *base)
        return generation

    def record_vector_file(self, generation: int, sha256: str, sampled: str | None) -> None:
        """The checksums of a base saved at ``generation``: of every byte and of sampled
        blocks (None: none, as for bases adopted from an older lookalike)."""
        with self.transaction() as tx:
            self._record_vector_file(tx, generation, sha256, sampled)

    @staticmethod
    def _record_vector_file(
        tx: sqlite3.Connection, generation: int, sha256: str, sampled: str | None
    ) -> None:
        tx.execute(
            "INSERT OR REPLACE INTO vector_files (generation, sha256) VALUES (?, ?)",
            (generation, sha256),
        )
        tx.execute("DELETE FROM vector_file_samples WHERE generation = ?", (generation,))
        if sampled is not None:
            tx.execute(
                "INSERT INTO vector_file_samples (generation, sha256) VALUES (?, ?)",
                (generation, sampled),
            )

    def forget_vector_files(self, keep: int) -> None:
        with self.transaction() as tx:
            tx.execute("DELETE FROM vector_files WHERE generation != ?", (keep,))
            tx.execute("DELETE FROM vector_file_samples WHERE generation != ?", (keep,))

    def set_meta(self, items: dict[str, str]) -> None:
        with self.transaction() as tx:
            tx.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", items.items())

    def record_recall(self, generation: int, recall: float, how: str) -> None:
        """Keep a measured recall@10 of the vector index at ``generation``."""
        self.set_meta(
            {
                "recall_at_10": f"{recall:.4f}",
                "recall_generation": str(generation),
                "recall_how": how,
            }
        )

    def prune_removal_log(self, upto: int) -> None:
        """Forget removals at or before ``upto`` (a generation a vector file was saved at)."""
        with self.transaction() as tx:
            tx.execute("DELETE FROM removed WHERE generation <= ?", (upto,))
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('removed_log_since', ?)",
                (str(upto),),
            )


@dataclass(frozen=True)
class ClassTable:
    """Stored classes of n images: ``ids`` int64 (n,) image ids, ascending; ``classes``
    uint16 (n, k) class ids and ``probs`` float32 (n, k) probabilities, best first."""

    ids: np.ndarray
    classes: np.ndarray
    probs: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[tuple[int, bytes, bytes]]) -> ClassTable:
        tops = [TopClasses.from_bytes(c, p) for _, c, p in rows]
        k = max((len(t.ids) for t in tops), default=0)
        classes = np.zeros((len(tops), k), dtype=np.uint16)
        probs = np.zeros((len(tops), k), dtype=np.float32)  # a shorter row pads with p = 0
        for i, top in enumerate(tops):
            classes[i, : len(top.ids)] = top.ids
            probs[i, : len(top.ids)] = top.probs
        return cls(np.fromiter((r[0] for r in rows), np.int64, len(rows)), classes, probs)

    def subset(self, ids: np.ndarray) -> ClassTable:
        keep = np.isin(self.ids, ids)
        return ClassTable(self.ids[keep], self.classes[keep], self.probs[keep])


def _write_classes(tx: sqlite3.Connection, image_id: int, classes: TopClasses | None) -> None:
    """Replace (or, None, drop) one image's stored classes."""
    if classes is None:
        tx.execute("DELETE FROM classes WHERE id = ?", (image_id,))
    else:
        tx.execute(
            "INSERT OR REPLACE INTO classes (id, ids, probs) VALUES (?, ?, ?)",
            (image_id, *classes.to_bytes()),
        )


def _write_local_features(
    tx: sqlite3.Connection, image_id: int, features: LocalFeatures | None
) -> None:
    """Replace (or, None, drop) one image's stored local features."""
    if features is None:
        tx.execute("DELETE FROM local_features WHERE id = ?", (image_id,))
    else:
        tx.execute(
            "INSERT OR REPLACE INTO local_features (id, positions, descriptors) VALUES (?, ?, ?)",
            (image_id, *features.to_bytes()),
        )


def _record(row: Sequence[object]) -> ImageRecord:
    """A record from a row, its path decoded from the stored form (files.paths)."""
    record = record_from_row(row)
    path = from_stored(record.path)
    return record if path == record.path else dataclasses.replace(record, path=path)


def _migrate_from_v1(tx: sqlite3.Connection) -> None:
    """Schema 1 (lookalike before the store protocol), 2, 3, 4 or 5 -> 6, in the caller's
    transaction.

    Adds the tables and columns that came later, records the kind of store and vector index
    and a unique id, and gives int8 indexes the model id that names their calibration.
    """
    tables = {r[0] for r in tx.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "images" in tables:
        have = {r[1] for r in tx.execute("PRAGMA table_info(images)")}
        for column in column_definitions():
            if column.split()[0] not in have:
                tx.execute(f"ALTER TABLE images ADD COLUMN {column}")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            tx.execute(statement)
    meta = dict(tx.execute("SELECT key, value FROM meta").fetchall())
    renamed = v1_model_id(meta.get("model_id", ""))
    if renamed != meta.get("model_id"):
        tx.execute("UPDATE images SET model_id = ? WHERE model_id = ?", (renamed, meta["model_id"]))
    tx.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [
            ("model_id", renamed),
            ("store", meta.get("store", "sqlite")),
            ("vector_index", "faiss"),  # a v1-v4 'faiss-flat' file is a valid exact base
            ("index_uid", meta.get("index_uid", uuid.uuid4().hex)),
            ("schema_version", str(SCHEMA_VERSION)),
        ],
    )


# Every schema-1 int8 index was calibrated on the same bundled photographs with the same
# settings, whose tag (lookalike.embed.calibration) is this: a fact of history, kept here.
V1_INT8_CALIBRATION_TAG = "76bed7c8"


def v1_model_id(model_id: str) -> str:
    """The schema-2 name of a schema-1 model id: int8 ids now name their calibration."""
    return f"{model_id}-{V1_INT8_CALIBRATION_TAG}" if model_id.endswith("-int8") else model_id
