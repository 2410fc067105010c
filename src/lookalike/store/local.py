"""The embedded store: a SQLite catalogue and a FAISS vector index in one directory.

Layout of ``DIR``: ``catalogue.sqlite`` (+ WAL files), ``vectors-<generation>.faiss`` (the
base of the vector index, see :mod:`lookalike.store.vectors`), ``write.lock``. Readers open
freely; writers take the lock (see :meth:`LocalStore.writing`). Nothing else opens these files.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lookalike.embed.classes import TopClasses
from lookalike.embed.local_features import LocalFeatures
from lookalike.errors import IndexNotFoundError, LookalikeError, LookalikeWarning, StoreError
from lookalike.search.filters import Filters
from lookalike.store import ann
from lookalike.store.base import Ranking, StoreInfo
from lookalike.store.catalogue import SCHEMA_VERSION, Catalogue, ClassTable, Upsert
from lookalike.store.codec import CompactCodec, Float32Codec
from lookalike.store.lock import WriterLock
from lookalike.store.record import ImageRecord
from lookalike.store.vectors import (
    VECTOR_INDEX_KIND,
    VectorIndex,
    change_whitening,
    file_sha256,
    remove_temporary_files,
    save_base,
    saved_generations,
    usable_base,
    wants_merge,
)
from lookalike.store.whitening import Whitening

CATALOGUE_FILE = "catalogue.sqlite"
STORE_KIND = "sqlite"
# A compact vector row (808 bytes) fills 4 KB pages to 80 %, 16 KB ones to 94 %: 874 bytes an
# image of vectors table against 1,038 (measured on 100,000 rows).
COMPACT_PAGE_SIZE = 16384


class LocalStore:
    """Catalogue + vectors of one index directory (implements :class:`~lookalike.store.Store`).

    Vectors load on first search and follow new writes, by this or any other process.
    """

    def __init__(self, directory: Path, catalogue: Catalogue) -> None:
        self.directory = directory
        self.location = str(directory)
        self._adopt(catalogue)
        self._vectors: VectorIndex | None = None
        self._lock: WriterLock | None = None
        # Threads share one store (a web server): SQLite serialises its own calls, this
        # guards the in-memory FAISS index while it catches up with new writes.
        self._mutex = threading.RLock()

    def _adopt(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._inode = os.stat(catalogue.path).st_ino
        meta = catalogue.meta()
        if meta.get("vector_index") != VECTOR_INDEX_KIND:
            raise LookalikeError(
                f"index {self.directory} uses vector index {meta['vector_index']!r}, "
                f"which this lookalike cannot read"
            )
        self.model_name = meta["model_name"]
        self.model_id = meta["model_id"]
        self.dim = int(meta["dim"])
        self.uid = meta["index_uid"]
        self.compact = catalogue.codec.name != Float32Codec.name

    def _follow_replacement(self) -> None:
        """If the directory now holds another index (deleted and made again while this
        process kept the old file open), read the new one, or refuse if its vectors are of
        another kind: never the new vectors with the old records."""
        try:
            inode = os.stat(self.catalogue.path).st_ino
        except OSError as exc:
            raise StoreError(f"index {self.directory} is gone: {exc.strerror}") from exc
        if inode == self._inode:
            return
        fresh = LocalStore.open(self.directory)
        if (fresh.model_id, fresh.dim) != (self.model_id, self.dim):
            fresh.close()
            raise StoreError(
                f"index {self.directory} was replaced by one of model {fresh.model_id}; "
                "restart to use it"
            )
        self.catalogue.close()
        self._adopt(fresh.catalogue)
        self._vectors = None

    @classmethod
    def create(
        cls, directory: Path, model_name: str, model_id: str, dim: int, compact: bool = False
    ) -> LocalStore:
        """Make a new, empty index at ``directory`` (which may exist but hold no index);
        ``compact``: vectors stored in 5 bits a dimension and searched by 64-byte codes."""
        cls.make_directory(directory)
        if cls.exists(directory):
            raise LookalikeError(f"an index already exists at {directory}")
        with WriterLock(directory):
            catalogue = Catalogue(
                directory / CATALOGUE_FILE, COMPACT_PAGE_SIZE if compact else None
            )
            catalogue.initialise(
                {
                    "model_name": model_name,
                    "model_id": model_id,
                    "dim": str(dim),
                    "store": STORE_KIND,
                    "vector_index": VECTOR_INDEX_KIND,
                    "vector_codec": (CompactCodec() if compact else Float32Codec()).name,
                }
            )
        return cls(directory, catalogue)

    @staticmethod
    def make_directory(directory: Path) -> None:
        """Make ``directory`` for an index, or say in one line why it cannot be one."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if not os.access(directory, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied")
        except FileExistsError:
            raise StoreError(f"cannot make an index at {directory}: it is a file") from None
        except NotADirectoryError:
            raise StoreError(
                f"cannot make an index at {directory}: a part of that path is a file"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot make an index at {directory}: {exc.strerror}") from exc

    @classmethod
    def open(cls, directory: Path) -> LocalStore:
        if directory.exists() and not directory.is_dir():
            raise IndexNotFoundError(f"no index at {directory}: it is a file, not a folder")
        if not cls.exists(directory):
            raise IndexNotFoundError(
                f"no index at {directory} "
                f"(create one with 'lookalike index FOLDER --index {directory}')"
            )
        catalogue = Catalogue(directory / CATALOGUE_FILE)
        try:
            if catalogue.ensure_version() < SCHEMA_VERSION:
                _adopt_unchecked_vector_files(directory, catalogue)
        except BaseException:
            catalogue.close()
            raise
        return cls(directory, catalogue)

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
            self._follow_replacement()
            if self._vectors is None or self._vectors.outdated(self.directory, self.catalogue):
                self._vectors = VectorIndex.load(self.directory, self.dim, self.catalogue)
            else:
                self._vectors.catch_up(self.catalogue)
            return self._vectors

    def search(self, queries: np.ndarray, k: int, filters: Filters | None = None) -> list[Ranking]:
        """Top ``k`` (record, score) per query row, best first; queries are float32 (n, dim).

        Filters travel into FAISS as the set of catalogue ids that pass them, so a narrow
        filter still returns ``k`` results when that many pass. An approximate index proposes
        a short list (``ann.shortlist``), re-scored with the stored vectors: scores are
        cosines (of the decoded vectors, in compact mode)."""
        allowed = self.catalogue.matching_ids(filters) if filters and filters.active else None
        with self._mutex:
            vectors = self.vectors
            if vectors.approximate:
                scores, ids = vectors.search(queries, vectors.shortlist(k), allowed)
                scores, ids = self._rescore(vectors, queries, ids, k)
            else:
                scores, ids = vectors.search(queries, k, allowed)
        records = self.catalogue.records(sorted({int(i) for i in ids.ravel() if i >= 0}))
        return [
            [
                (records[int(i)], float(s))
                for s, i in zip(row_s, row_i, strict=True)
                if int(i) in records
            ]
            for row_s, row_i in zip(scores, ids, strict=True)
        ]

    def _rescore(
        self, vectors: VectorIndex, queries: np.ndarray, ids: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` of each row's candidate ``ids`` by exact inner product."""
        known, raw = self.catalogue.vectors_of(np.unique(ids[ids >= 0]).tolist())
        stored = vectors.transform(raw)  # each candidate once, though queries may share it
        queries = vectors.transform(queries)
        out_scores = np.full((len(ids), k), -np.inf, np.float32)
        out_ids = np.full((len(ids), k), -1, np.int64)
        if not len(known):
            return out_scores, out_ids
        for row, (query, candidates) in enumerate(zip(queries, ids, strict=True)):
            at = np.minimum(np.searchsorted(known, candidates), len(known) - 1)
            at = at[known[at] == candidates]  # padding (-1) and vanished ids drop out
            exact = stored[at] @ query
            best = np.argsort(-exact, kind="stable")[:k]
            out_scores[row, : len(best)] = exact[best]
            out_ids[row, : len(best)] = known[at[best]]
        return out_scores, out_ids

    def count(self) -> int:
        return self.catalogue.count("ok")

    def generation(self) -> int:
        with self._mutex:
            self._follow_replacement()
        return self.catalogue.generation()

    def record(self, image_id: int) -> ImageRecord | None:
        return self.catalogue.records([image_id]).get(image_id)

    def record_by_path(self, path: str) -> ImageRecord | None:
        return self.catalogue.record_by_path(path)

    def records(self, ids: Sequence[int]) -> dict[int, ImageRecord]:
        return self.catalogue.records(ids)

    def iter_records(self, status: str | None = None) -> Iterator[ImageRecord]:
        return self.catalogue.iter_records(status)

    def vector(self, image_id: int) -> np.ndarray | None:
        return self.catalogue.vector(image_id)

    def vectors_of(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        found, raw = self.catalogue.vectors_of(list(ids))
        return dict(zip(found.tolist(), raw, strict=True))

    def local_features(self, ids: Sequence[int]) -> dict[int, LocalFeatures]:
        return self.catalogue.local_features(ids)

    def all_vectors(self) -> np.ndarray:
        chunks = [v for _, v in self.iter_vectors()]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def iter_vectors(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.catalogue.vectors_since(0)

    def stat_map(self) -> dict[str, tuple[int, int, int]]:
        return self.catalogue.stat_map()

    def whitening(self) -> Whitening | None:
        return self.catalogue.whitening()

    def whitened(self) -> bool:
        with self._mutex:
            return self.vectors.whitening is not None

    def adapts(self) -> bool:
        return self.catalogue.meta().get("auto_adapt", "1") == "1"

    def info(self) -> StoreInfo:
        whitening = self.catalogue.whitening()
        recall = self.catalogue.recall()
        return StoreInfo(
            location=self.location,
            kind=f"{STORE_KIND}+{VECTOR_INDEX_KIND}",
            vector_index=self.catalogue.meta().get("vector_base", "flat"),
            compact=self.compact,
            recall_at_10=recall[0] if recall else None,
            model_name=self.model_name,
            model_id=self.model_id,
            dim=self.dim,
            images=self.count(),
            skipped=self.catalogue.count("skipped"),
            disk_bytes=sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file()),
            whitening_dim=whitening.dim if whitening else None,
        )

    def measure_recall(self, queries: int) -> float:
        ids = self.catalogue.matching_ids(Filters())
        chosen = np.random.default_rng().choice(ids, min(queries, len(ids)), replace=False)
        _, raw = self.catalogue.vectors_of(chosen.tolist())
        if not len(raw):
            return 1.0
        with self._mutex:
            vectors = self.vectors
            generation = vectors.generation
        found = [[record.id for record, _ in ranking] for ranking in self.search(raw, ann.K + 1)]
        chunks = ((ids, vectors.transform(v)) for ids, v in self.catalogue.vectors_since(0))
        recall = ann.recall_of_stored(vectors.transform(raw), found, chunks)
        if self.catalogue.writable:
            self.catalogue.record_recall(generation, recall, f"{len(raw)} stored vectors")
        return recall

    def class_table(self, filters: Filters | None = None) -> ClassTable:
        allowed = self.catalogue.matching_ids(filters) if filters and filters.active else None
        return self.catalogue.class_table(allowed)

    def unclassified_paths(self) -> set[str]:
        return self.catalogue.unclassified_paths()

    def not_duplicate_pairs(self) -> set[tuple[int, int]]:
        return self.catalogue.not_duplicate_pairs()

    # writing

    @contextmanager
    def writing(self) -> Iterator[LocalStore]:
        """Hold the writer lock; on the way out, save the vector file at the new generation.
        Re-entrant: inside an outer ``writing()``, an inner one only runs its body."""
        if self._lock is not None:
            yield self
            return
        lock = WriterLock(self.directory)
        lock.acquire()
        self._lock = lock
        remove_temporary_files(self.directory)
        started_at = self.catalogue.generation()
        try:
            yield self
        finally:
            try:
                self._save_base_if_due(self.catalogue.generation() != started_at)
            finally:
                lock.release()
                self._lock = None

    def _save_base_if_due(self, wrote: bool) -> None:
        """A run that wrote nothing (an unchanged folder) loads no vectors; one that wrote a
        little to a large index leaves it in the delta (vectors.wants_merge). Where no base
        is usable at all (a writer killed as it published one, a deleted file), every reader
        replays the whole collection into memory, so even a run that wrote nothing saves one;
        if that fails, nothing of this run is lost and it only warns."""
        if not wrote and usable_base(self.directory, self.catalogue) is not None:
            return
        if not wants_merge(self.directory, self.catalogue):
            return
        try:
            save_base(self.directory, self.catalogue, np.random.default_rng(0))
        except StoreError as exc:
            if wrote:
                raise
            warnings.warn(str(exc), LookalikeWarning, stacklevel=2)

    def set_adapts(self, adapts: bool) -> None:
        self._need_lock("set_adapts")
        self.catalogue.set_meta({"auto_adapt": "1" if adapts else "0"})

    def set_whitening(self, whitening: Whitening | None) -> int:
        self._need_lock("set_whitening")
        if whitening is not None and whitening.mean.shape != (self.dim,):
            raise ValueError(
                f"whitening is for {whitening.mean.shape} vectors, index has {self.dim}"
            )
        return change_whitening(self.directory, self.catalogue, whitening, np.random.default_rng(0))

    def write(self, upserts: Iterable[Upsert], removals: Iterable[str] = ()) -> int:
        """As the protocol says; a compact index keeps no local features (20 KB an image:
        25 times its compact vector), so it searches without spatial re-ranking."""
        self._need_lock("write")
        if self.compact:
            upserts = (dataclasses.replace(u, local_features=None) for u in upserts)
        return self.catalogue.apply(upserts, removals, self.model_id)

    def add_not_duplicates(self, ids: Sequence[int]) -> int:
        self._need_lock("add_not_duplicates")
        return self.catalogue.add_not_duplicates(ids)

    def write_classes(self, items: Iterable[tuple[str, TopClasses]]) -> int:
        self._need_lock("write_classes")
        return self.catalogue.set_classes(items)

    def _need_lock(self, call: str) -> None:
        if self._lock is None:
            raise RuntimeError(f"LocalStore.{call} needs the writer lock: use `store.writing()`")


def _adopt_unchecked_vector_files(directory: Path, catalogue: Catalogue) -> None:
    """Vector caches saved before checksums existed are taken as they are at the upgrade
    (their format checked them then); from now on they are verified like any other."""
    for generation in saved_generations(directory):
        if catalogue.vector_file_checksum(generation) is None:
            path = directory / f"vectors-{generation}.faiss"
            catalogue.record_vector_file(generation, file_sha256(path), None)
