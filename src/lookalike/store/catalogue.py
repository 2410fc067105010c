"""The SQLite catalogue: every image file, its metadata, its vector, and a change log.

It is the source of truth. Every write is one transaction that also bumps ``generation``;
vectors and removals carry the generation that wrote them, so a FAISS file saved at an
older generation can be brought up to date by replaying only what changed since.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.store.whitening import Whitening

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: ids stay stable for clients
    path        TEXT NOT NULL UNIQUE,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ok', 'skipped')),
    reason      TEXT,
    width       INTEGER,
    height      INTEGER,
    format      TEXT,
    taken_at    TEXT,
    orientation INTEGER,
    model_id    TEXT,
    indexed_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vectors (
    id         INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    vector     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_generation ON vectors (generation);
CREATE TABLE IF NOT EXISTS removed (id INTEGER NOT NULL, generation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_generation ON removed (generation);
-- A learned transform of the stored vectors (PCA-whitening), applied to them and to queries.
CREATE TABLE IF NOT EXISTS whitening (one INTEGER PRIMARY KEY CHECK (one = 1), data BLOB NOT NULL);
"""


@dataclass(frozen=True)
class ImageRecord:
    """One catalogue row (without its vector)."""

    id: int
    path: str
    size: int
    mtime_ns: int
    status: str  # 'ok' (embedded) or 'skipped' (with a reason)
    reason: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    taken_at: str | None = None
    orientation: int | None = None
    model_id: str | None = None


RECORD_COLUMNS = (
    "id, path, size, mtime_ns, status, reason, width, height, format, taken_at, orientation, "
    "model_id"
)


@dataclass(frozen=True)
class Upsert:
    """A file to insert or update: its record fields and, when embedded, its vector."""

    path: str
    size: int
    mtime_ns: int
    vector: np.ndarray | None  # float32 (dim,); None when skipped
    reason: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    taken_at: str | None = None
    orientation: int | None = None


class Catalogue:
    """Typed access to the SQLite file. WAL mode: readers never wait for the writer."""

    def __init__(self, path: Path) -> None:
        # Shared between a server's threads; Store serialises access with its mutex.
        self.conn = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints, never corrupt
        self._add_missing_tables()

    def initialise(self, meta: dict[str, str]) -> None:
        self.conn.executescript(SCHEMA)  # idempotent; executescript commits on its own
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [*meta.items(), ("generation", "0"), ("schema_version", SCHEMA_VERSION)],
            )

    def _add_missing_tables(self) -> None:
        """Indexes made by an earlier version lack later tables (all optional ones)."""
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        if "images" in tables and "whitening" not in tables:
            self.conn.executescript(SCHEMA)

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
        return int(
            self.conn.execute("SELECT count(*) FROM images WHERE status = ?", (status,)).fetchone()[
                0
            ]
        )

    def stat_map(self) -> dict[str, tuple[int, int, int]]:
        """path -> (id, size, mtime_ns) for every file, to tell changed from unchanged."""
        rows = self.conn.execute("SELECT path, id, size, mtime_ns FROM images")
        return {path: (id_, size, mtime) for path, id_, size, mtime in rows}

    def records(self, ids: Sequence[int]) -> dict[int, ImageRecord]:
        found: dict[int, ImageRecord] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM images WHERE id IN ({marks})", chunk
            ):
                found[row[0]] = ImageRecord(*row)
        return found

    def record_by_path(self, path: str) -> ImageRecord | None:
        row = self.conn.execute(
            f"SELECT {RECORD_COLUMNS} FROM images WHERE path = ?", (path,)
        ).fetchone()
        return ImageRecord(*row) if row else None

    def iter_records(self, status: str | None = None) -> Iterator[ImageRecord]:
        query = f"SELECT {RECORD_COLUMNS} FROM images"
        rows = (
            self.conn.execute(query + " WHERE status = ? ORDER BY id", (status,))
            if status
            else self.conn.execute(query + " ORDER BY id")
        )
        for row in rows:
            yield ImageRecord(*row)

    def whitening(self) -> Whitening | None:
        row = self.conn.execute("SELECT data FROM whitening").fetchone()
        return Whitening.from_bytes(row[0]) if row else None

    def vector(self, image_id: int) -> np.ndarray | None:
        row = self.conn.execute("SELECT vector FROM vectors WHERE id = ?", (image_id,)).fetchone()
        return np.frombuffer(row[0], dtype=np.float32) if row else None

    def vectors_since(self, generation: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Chunks of (ids int64 (n,), vectors float32 (n, d)) written after ``generation``."""
        rows = self.conn.execute(
            "SELECT id, vector FROM vectors WHERE generation > ? ORDER BY id", (generation,)
        )
        while chunk := rows.fetchmany(4096):
            ids = np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk))
            yield ids, np.stack([np.frombuffer(r[1], dtype=np.float32) for r in chunk])

    def ids_changed_since(self, generation: int) -> np.ndarray:
        """Ids whose vectors were removed or replaced after ``generation`` (int64)."""
        rows = self.conn.execute(
            "SELECT id FROM removed WHERE generation > ? "
            "UNION SELECT id FROM vectors WHERE generation > ?",
            (generation, generation),
        ).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def removal_log_since(self) -> int:
        """The generation from which the removal log is complete."""
        return int(self.meta().get("removed_log_since", "0"))

    # writes (the caller holds the writer lock)

    def apply(self, upserts: Iterable[Upsert], removals: Iterable[str], model_id: str) -> int:
        """Write files and removals in one transaction; returns the new generation."""
        now = time.time()
        with self.transaction() as tx:
            generation = self.generation() + 1
            for path in removals:
                row = tx.execute("SELECT id FROM images WHERE path = ?", (path,)).fetchone()
                if row:
                    tx.execute("DELETE FROM images WHERE id = ?", row)
                    tx.execute("DELETE FROM vectors WHERE id = ?", row)
                    tx.execute(
                        "INSERT INTO removed (id, generation) VALUES (?, ?)", (row[0], generation)
                    )
            for u in upserts:
                status = "ok" if u.vector is not None else "skipped"
                row = tx.execute(
                    """INSERT INTO images (path, size, mtime_ns, status, reason, width, height,
                           format, taken_at, orientation, model_id, indexed_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (path) DO UPDATE SET size = excluded.size,
                           mtime_ns = excluded.mtime_ns, status = excluded.status,
                           reason = excluded.reason, width = excluded.width,
                           height = excluded.height, format = excluded.format,
                           taken_at = excluded.taken_at, orientation = excluded.orientation,
                           model_id = excluded.model_id, indexed_at = excluded.indexed_at
                       RETURNING id""",
                    (
                        u.path,
                        u.size,
                        u.mtime_ns,
                        status,
                        u.reason,
                        u.width,
                        u.height,
                        u.format,
                        u.taken_at,
                        u.orientation,
                        model_id if u.vector is not None else None,
                        now,
                    ),
                ).fetchone()
                if u.vector is not None:
                    blob = np.ascontiguousarray(u.vector, dtype=np.float32).tobytes()
                    tx.execute(
                        "INSERT OR REPLACE INTO vectors (id, generation, vector) VALUES (?, ?, ?)",
                        (row[0], generation, blob),
                    )
                else:  # a file that was embedded and is now unreadable loses its vector
                    if tx.execute("DELETE FROM vectors WHERE id = ?", row).rowcount:
                        tx.execute(
                            "INSERT INTO removed (id, generation) VALUES (?, ?)",
                            (row[0], generation),
                        )
            tx.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),))
        return generation

    def set_whitening(self, whitening: Whitening | None) -> int:
        """Store (or drop) the whitening; returns the new generation.

        Every vector in the index changes with it, so the removal log restarts here: a vector
        index from before cannot be patched and rebuilds from the stored vectors.
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
        return generation

    def prune_removal_log(self, upto: int) -> None:
        """Forget removals at or before ``upto`` (a generation a FAISS file was saved at)."""
        with self.transaction() as tx:
            tx.execute("DELETE FROM removed WHERE generation <= ?", (upto,))
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('removed_log_since', ?)",
                (str(upto),),
            )
