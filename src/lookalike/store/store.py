"""The one interface to an index directory; nothing else opens its files.

Layout of ``DIR``: ``catalogue.sqlite`` (+ WAL files), ``vectors-<generation>.faiss``,
``write.lock``. Readers open freely; writers take the lock (see :meth:`Store.writing`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lookalike.errors import IndexNotFoundError, LookalikeError
from lookalike.store.catalogue import Catalogue, ImageRecord, Upsert
from lookalike.store.lock import WriterLock
from lookalike.store.vectors import VectorIndex
from lookalike.store.whitening import Whitening

CATALOGUE_FILE = "catalogue.sqlite"

__all__ = ["ImageRecord", "Store", "Upsert"]


class Store:
    """Catalogue + vectors of one index. Vectors load on first search and follow new writes."""

    def __init__(self, directory: Path, catalogue: Catalogue) -> None:
        self.directory = directory
        self.catalogue = catalogue
        meta = catalogue.meta()
        self.model_name = meta["model_name"]
        self.model_id = meta["model_id"]
        self.dim = int(meta["dim"])
        self._vectors: VectorIndex | None = None
        self._lock: WriterLock | None = None
        # Threads share one Store (a web server): SQLite serialises its own calls, this
        # guards the in-memory FAISS index while it catches up with new writes.
        self._mutex = threading.RLock()

    @classmethod
    def create(cls, directory: Path, model_name: str, model_id: str, dim: int) -> Store:
        """Make a new, empty index at ``directory`` (which may exist but hold no index)."""
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / CATALOGUE_FILE).exists():
            raise LookalikeError(f"an index already exists at {directory}")
        with WriterLock(directory):
            catalogue = Catalogue(directory / CATALOGUE_FILE)
            catalogue.initialise({"model_name": model_name, "model_id": model_id, "dim": str(dim)})
        return cls(directory, catalogue)

    @classmethod
    def open(cls, directory: Path) -> Store:
        if not (directory / CATALOGUE_FILE).is_file():
            raise IndexNotFoundError(
                f"no index at {directory} "
                f"(create one with 'lookalike index FOLDER --index {directory}')"
            )
        return cls(directory, Catalogue(directory / CATALOGUE_FILE))

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / CATALOGUE_FILE).is_file()

    def close(self) -> None:
        self.catalogue.close()
        if self._lock:
            self._lock.release()

    # reading

    @property
    def vectors(self) -> VectorIndex:
        """The vector index, caught up with any writes made since (by any process)."""
        with self._mutex:
            if self._vectors is None:
                self._vectors = VectorIndex.load(self.directory, self.dim, self.catalogue)
            else:
                self._vectors.catch_up(self.catalogue)
            return self._vectors

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[ImageRecord, float]]]:
        """Top ``k`` (record, score) per query row, best first; queries are float32 (n, dim)."""
        with self._mutex:
            scores, ids = self.vectors.search(queries, k)
        records = self.catalogue.records(sorted({int(i) for i in ids.ravel() if i >= 0}))
        return [
            [
                (records[int(i)], float(s))
                for s, i in zip(row_s, row_i, strict=True)
                if int(i) in records
            ]
            for row_s, row_i in zip(scores, ids, strict=True)
        ]

    def count(self) -> int:
        return self.catalogue.count("ok")

    def record_by_path(self, path: str) -> ImageRecord | None:
        return self.catalogue.record_by_path(path)

    def records(self, ids: Sequence[int]) -> dict[int, ImageRecord]:
        return self.catalogue.records(ids)

    def iter_records(self, status: str | None = None) -> Iterator[ImageRecord]:
        return self.catalogue.iter_records(status)

    def vector(self, image_id: int) -> np.ndarray | None:
        return self.catalogue.vector(image_id)

    def stat_map(self) -> dict[str, tuple[int, int, int]]:
        return self.catalogue.stat_map()

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())

    # writing

    @contextmanager
    def writing(self) -> Iterator[Store]:
        """Hold the writer lock; on the way out, save the vector file at the new generation."""
        lock = WriterLock(self.directory)
        lock.acquire()
        self._lock = lock
        try:
            yield self
        finally:
            try:
                vectors = self.vectors
                if vectors.generation > self.catalogue.removal_log_since():
                    vectors.save(self.directory)
                    self.catalogue.prune_removal_log(vectors.generation)
            finally:
                lock.release()
                self._lock = None

    def set_whitening(self, whitening: Whitening | None) -> int:
        """Store a whitening learned from this index's vectors (None drops it)."""
        if self._lock is None:
            raise RuntimeError("Store.set_whitening needs the writer lock")
        if whitening is not None and whitening.mean.shape != (self.dim,):
            raise ValueError(
                f"whitening is for {whitening.mean.shape} vectors, index has {self.dim}"
            )
        return self.catalogue.set_whitening(whitening)

    def all_vectors(self) -> np.ndarray:
        """Every stored (raw) vector, float32 (n, dim)."""
        chunks = [v for _, v in self.catalogue.vectors_since(0)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def write(self, upserts: Iterable[Upsert], removals: Iterable[str] = ()) -> int:
        """One transaction of inserts/updates/removals; returns the new generation."""
        if self._lock is None:
            raise RuntimeError("Store.write needs the writer lock: use `with store.writing():`")
        return self.catalogue.apply(upserts, removals, self.model_id)
