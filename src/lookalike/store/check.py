"""Checking, repairing and backing up an embedded index, even one too damaged to open.

``check_index`` runs SQLite's integrity check and the store's own consistency checks;
``repair_index`` copies every row that can still be read into a fresh catalogue (the damaged
file is kept beside it), so that the next ``lookalike index`` run re-embeds only what was
lost; ``backup_index`` writes a consistent copy with SQLite's online backup API while readers
and writers go on.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.errors import StoreError
from lookalike.store.catalogue import SCHEMA, Catalogue
from lookalike.store.codec import CODECS
from lookalike.store.local import CATALOGUE_FILE, LocalStore
from lookalike.store.lock import WriterLock
from lookalike.store.vectors import file_sha256, saved_generations

TABLES = (
    "meta",
    "images",
    "vectors",
    "classes",
    "local_features",
    "removed",
    "whitening",
    "vector_files",
    "not_duplicates",
)
SALVAGE_CHUNK = 512  # rows read at once; a damaged chunk is split until single rows fail


@dataclass
class CheckReport:
    """What ``check_index`` found; ``problems`` is empty for a healthy index."""

    catalogue: str
    problems: list[str] = field(default_factory=list)
    images: int | None = None  # embedded images, when the catalogue could be read

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class RepairReport:
    """Rows kept and rows lost per table; ``damaged`` is where the old file went."""

    kept: dict[str, int]
    lost: dict[str, int]
    dropped_images: int  # embedded records whose vector was lost: re-embedded next run
    damaged: str


def check_index(directory: Path) -> CheckReport:
    """SQLite's integrity check, then: every embedded image has a vector of the index's
    dimension, and the saved vector cache matches its recorded checksum."""
    path = directory / CATALOGUE_FILE
    report = CheckReport(str(path))
    if not path.is_file():
        raise StoreError(f"no index at {directory}")
    try:
        with _read_only(path) as conn:
            rows = conn.execute("PRAGMA integrity_check(20)").fetchall()
            report.problems += [f"sqlite: {r[0]}" for r in rows if r[0] != "ok"]
            if report.problems:
                return report
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            dim = int(meta["dim"])
            report.images = conn.execute(
                "SELECT count(*) FROM images WHERE status = 'ok'"
            ).fetchone()[0]
            missing = conn.execute(
                "SELECT count(*) FROM images i LEFT JOIN vectors v ON v.id = i.id "
                "WHERE i.status = 'ok' AND v.id IS NULL"
            ).fetchone()[0]
            if missing:
                report.problems.append(f"{missing} embedded image(s) have no vector")
            codec = CODECS[meta.get("vector_codec", "float32")]
            wrong = conn.execute(
                "SELECT count(*) FROM vectors WHERE length(vector) != ?", (codec.blob_size(dim),)
            ).fetchone()[0]
            if wrong:
                report.problems.append(f"{wrong} vector(s) are not {dim} {codec.name} values")
    except (sqlite3.Error, KeyError, ValueError) as exc:
        report.problems.append(f"sqlite: {exc}")
        return report
    report.problems += _vector_cache_problems(directory)
    return report


def repair_index(directory: Path) -> RepairReport:
    """Salvage every readable row into a new catalogue and put it in place of the old one
    (kept as ``catalogue.sqlite.damaged-<time>``). Embedded records whose vector was lost
    are dropped, so the next ``index`` run embeds those files again; the vector cache is
    deleted and rebuilt from the repaired catalogue."""
    path = directory / CATALOGUE_FILE
    if not path.is_file():
        raise StoreError(f"no index at {directory}")
    fresh = path.with_name(f".{CATALOGUE_FILE}.repair")
    with WriterLock(directory):
        fresh.unlink(missing_ok=True)
        kept: dict[str, int] = {}
        lost: dict[str, int] = {}
        with _read_only(path) as old, sqlite3.connect(fresh, isolation_level=None) as new:
            new.executescript(SCHEMA)
            for table in TABLES:
                kept[table], lost[table] = _copy_table(old, new, table)
            meta = dict(new.execute("SELECT key, value FROM meta").fetchall())
            if not {"model_name", "model_id", "dim", "generation"} <= set(meta):
                raise StoreError(
                    f"{path} lost the index's own settings (its model): nothing to repair "
                    "from; make a new index"
                )
            dropped = _drop_orphans(new)
            # The vector cache and the removal log start again from the repaired rows.
            new.execute("DELETE FROM removed")
            new.execute("DELETE FROM vector_files")
            new.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('removed_log_since', ?)",
                (meta["generation"],),
            )
        damaged = path.with_name(f"{CATALOGUE_FILE}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.replace(path, damaged)
        os.replace(fresh, path)
        for generation in saved_generations(directory):
            (directory / f"vectors-{generation}.faiss").unlink(missing_ok=True)
    LocalStore.open(directory).close()  # it opens (and, if old, migrates) like any index
    return RepairReport(kept, lost, dropped, str(damaged))


def backup_index(directory: Path, destination: Path) -> int:
    """Copy the catalogue consistently into ``destination`` (a new index folder; the vector
    cache is rebuilt there on first use). Returns the images copied."""
    store = LocalStore.open(directory)
    try:
        if LocalStore.exists(destination):
            raise StoreError(f"{destination} already holds an index: choose a new folder")
        try:
            destination.mkdir(parents=True, exist_ok=True)
            target = sqlite3.connect(destination / CATALOGUE_FILE)
        except OSError as exc:
            raise StoreError(f"cannot write a backup to {destination}: {exc.strerror}") from exc
        try:
            store.catalogue.conn.backup(target)
        except sqlite3.Error as exc:
            raise StoreError(f"backup to {destination} failed: {exc}") from exc
        finally:
            target.close()
        return store.count()
    finally:
        store.close()


def _read_only(path: Path) -> closing[sqlite3.Connection]:
    """A plain read-only SQLite connection, closed on exit (no lookalike checks on open)."""
    return closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True))


def _copy_table(old: sqlite3.Connection, new: sqlite3.Connection, table: str) -> tuple[int, int]:
    """Copy the rows of ``table`` that can be read; returns (kept, lost)."""
    try:
        columns = [r[1] for r in old.execute(f"PRAGMA table_info({table})")]
        top = old.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.Error:
        return 0, 0  # the table itself is gone: nothing to count
    names = ", ".join(columns)
    insert = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    kept = lost = 0
    for rows, failed in _salvage(old, f"SELECT {names} FROM {table}", 1, top):
        new.executemany(insert, rows)
        kept += len(rows)
        lost += failed
    return kept, lost


def _salvage(
    conn: sqlite3.Connection, select: str, first: int, last: int
) -> Iterator[tuple[list[tuple[object, ...]], int]]:
    """Rows of ``select`` with rowid in [first, last], in chunks; a chunk that fails to read
    is split in halves down to single rows, and each unreadable rowid counts one lost
    (an id that never existed cannot be told from a lost one, so only reads that fail count)."""
    stack = [
        (start, min(start + SALVAGE_CHUNK - 1, last))
        for start in range(first, last + 1, SALVAGE_CHUNK)
    ]
    stack.reverse()
    while stack:
        low, high = stack.pop()
        try:
            rows = conn.execute(f"{select} WHERE rowid BETWEEN ? AND ?", (low, high)).fetchall()
        except sqlite3.Error:
            if low == high:
                yield [], 1
            else:
                middle = (low + high) // 2
                stack += [(middle + 1, high), (low, middle)]
            continue
        yield rows, 0


def _drop_orphans(conn: sqlite3.Connection) -> int:
    """Drop embedded records without a vector (re-embedded next run as new files) and
    vectors without a record; returns the records dropped."""
    dropped = conn.execute(
        "DELETE FROM images WHERE status = 'ok' AND id NOT IN (SELECT id FROM vectors)"
    ).rowcount
    conn.execute("DELETE FROM vectors WHERE id NOT IN (SELECT id FROM images)")
    conn.execute("DELETE FROM classes WHERE id NOT IN (SELECT id FROM images)")
    conn.execute(
        "DELETE FROM not_duplicates WHERE a NOT IN (SELECT id FROM images) "
        "OR b NOT IN (SELECT id FROM images)"
    )
    conn.execute("DELETE FROM local_features WHERE id NOT IN (SELECT id FROM images)")
    return int(dropped)


def _vector_cache_problems(directory: Path) -> list[str]:
    catalogue = Catalogue(directory / CATALOGUE_FILE)
    try:
        problems = []
        for generation in saved_generations(directory):
            path = directory / f"vectors-{generation}.faiss"
            expected = catalogue.vector_file_checksum(generation)
            if expected is None or file_sha256(path) != expected:
                problems.append(f"vector cache {path.name} is damaged (it is rebuilt on use)")
        return problems
    finally:
        catalogue.close()
