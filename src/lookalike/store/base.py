"""The store protocol: a place that keeps image records and their vectors.

Everything above it (``Index``, the CLI, the web server) talks to this protocol only. The
embedded SQLite + FAISS store (:class:`lookalike.store.local.LocalStore`) and the Milvus store
(:class:`lookalike.store.milvus.MilvusStore`) implement it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lookalike.embed.classes import TopClasses
from lookalike.embed.local_features import LocalFeatures
from lookalike.search.filters import Filters
from lookalike.store.catalogue import ClassTable, Upsert
from lookalike.store.record import ImageRecord
from lookalike.store.whitening import Whitening

Ranking = list[tuple[ImageRecord, float]]  # (record, cosine score), best first


@dataclass(frozen=True)
class StoreInfo:
    """What a store says about itself, for ``lookalike info`` and ``/api/stats``."""

    location: str  # a directory, or a URL for a remote store
    kind: str  # e.g. "sqlite+faiss"
    model_name: str
    model_id: str
    dim: int
    images: int
    skipped: int
    disk_bytes: int
    whitening_dim: int | None  # searched in this many whitened dimensions, if learned
    vector_index: str = "flat"  # the kind of vector index searched, e.g. "ivf2048-sq8 nprobe=16"
    recall_at_10: float | None = None  # its last measured recall@10 against exact search
    compact: bool = False  # vectors kept small, about 1 KB an image (lookalike index --compact)


class Store(Protocol):
    """Image records and their unit vectors, searchable by inner product.

    Readers never block; one writer at a time holds :meth:`writing`. ``generation`` grows with
    every committed write, so callers can cache what they read and notice changes.
    """

    location: str
    model_name: str  # the registry name (or model directory) that makes its vectors
    model_id: str  # the vector space: only vectors of this id may be added
    dim: int

    def close(self) -> None: ...

    # reading
    def count(self) -> int:
        """Embedded images."""
        ...

    def generation(self) -> int: ...

    def record(self, image_id: int) -> ImageRecord | None: ...

    def records(self, ids: Sequence[int]) -> dict[int, ImageRecord]: ...

    def record_by_path(self, path: str) -> ImageRecord | None: ...

    def iter_records(self, status: str | None = None) -> Iterator[ImageRecord]:
        """Records in id order; ``status`` 'ok' or 'skipped' keeps only those."""
        ...

    def stat_map(self) -> dict[str, tuple[int, int, int]]:
        """path -> (id, size, mtime_ns) of every known file, embedded or skipped."""
        ...

    def vector(self, image_id: int) -> np.ndarray | None:
        """The stored (raw) vector, float32 (dim,)."""
        ...

    def vectors_of(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored (raw) vectors of those of ``ids`` that have one, float32 (dim,) each:
        one lookup for many images, where :meth:`vector` makes one each."""
        ...

    def local_features(self, ids: Sequence[int]) -> dict[int, LocalFeatures]:
        """The stored local features of these images, for spatial re-ranking (images
        indexed without them are absent)."""
        ...

    def all_vectors(self) -> np.ndarray:
        """Every stored raw vector, float32 (n, dim)."""
        ...

    def iter_vectors(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored raw vector in chunks of (ids int64 (m,), vectors float32 (m, dim)),
        in no set order: a pass over a collection too large to hold twice in memory."""
        ...

    def whitening(self) -> Whitening | None:
        """The whitening searches go through, if one was learned (``set_whitening``)."""
        ...

    def whitened(self) -> bool:
        """Whether searches go through a whitening, so that their scores are not the model's
        cosines (cheap: no whitening is loaded)."""
        ...

    def adapts(self) -> bool:
        """Whether ``Index.add`` may adapt this index to its images on its own (an embedded
        index does, until ``set_adapts(False)``; a Milvus one never: it is not whitened)."""
        ...

    def search(self, queries: np.ndarray, k: int, filters: Filters | None = None) -> list[Ranking]:
        """Top ``k`` among the images ``filters`` keeps, per row of float32 (n, dim) raw
        vectors, scored as this store compares them (whitened, if :meth:`whitened`)."""
        ...

    def info(self) -> StoreInfo: ...

    def measure_recall(self, queries: int) -> float:
        """recall@10 of :meth:`search` against exact search, ``queries`` stored vectors as
        queries (each leaving itself out), and kept for :meth:`info`."""
        ...

    def class_table(self, filters: Filters | None = None) -> ClassTable:
        """The stored top ImageNet classes of the embedded images ``filters`` keeps."""
        ...

    def unclassified_paths(self) -> set[str]:
        """Paths of the embedded images that have no classes stored."""
        ...

    def not_duplicate_pairs(self) -> set[tuple[int, int]]:
        """Every pair of ids (a < b) recorded by :meth:`add_not_duplicates`."""
        ...

    # writing
    def writing(self) -> AbstractContextManager[Store]:
        """Hold the writer lock for the writes inside (raises IndexLockedError if taken). A
        Milvus store takes none: its writers may run at once (see lookalike.store.milvus)."""
        ...

    def write(self, upserts: Iterable[Upsert], removals: Iterable[str] = ()) -> int:
        """One atomic batch of inserts, updates and removals; returns the new generation."""
        ...

    def write_classes(self, items: Iterable[tuple[str, TopClasses]]) -> int:
        """Store the classes of files already embedded, by path, leaving their vectors as
        they are; returns the new generation."""
        ...

    def add_not_duplicates(self, ids: Sequence[int]) -> int:
        """Record that no two of these images are duplicates (a verdict that rescans keep;
        dropped with the image); returns the new generation."""
        ...

    def set_whitening(self, whitening: Whitening | None) -> int:
        """Search through a whitening learned from the stored vectors (None: raw again)."""
        ...

    def set_adapts(self, adapts: bool) -> None:
        """Keep whether ``Index.add`` may adapt this index on its own (:meth:`adapts`)."""
        ...
