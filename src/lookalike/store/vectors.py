"""The FAISS vector index: ids are catalogue ids; scores are inner products of unit vectors.

The file on disk, ``vectors-<generation>.faiss``, is a cache of the catalogue at that
generation, written atomically (temporary file, fsync, rename). Opening a stale or missing
file replays the catalogue's changes since, so a crash never leaves vectors out of step.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import faiss
import numpy as np

from lookalike.store.catalogue import Catalogue
from lookalike.store.whitening import Whitening

FILE_PATTERN = re.compile(r"^vectors-(\d+)\.faiss$")
VECTOR_INDEX_KIND = "faiss-flat"  # recorded in the catalogue: exact inner-product search


class VectorIndex:
    """An in-memory ``IndexIDMap2(IndexFlatIP)`` kept in step with a catalogue.

    With a whitening stored in the catalogue, the index holds whitened vectors and whitens
    queries the same way; the catalogue keeps the raw ones.
    """

    def __init__(self, dim: int, whitening: Whitening | None = None) -> None:
        self.raw_dim = dim
        self._reset(whitening)

    def _reset(self, whitening: Whitening | None) -> None:
        """Empty, at generation 0, holding vectors transformed by ``whitening``."""
        self.whitening = whitening
        self.dim = whitening.dim if whitening else self.raw_dim
        self.index: faiss.Index = new_flat_index(self.dim)
        self.generation = 0

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def load(cls, directory: Path, dim: int, catalogue: Catalogue) -> VectorIndex:
        """The newest saved file, brought up to the catalogue's generation."""
        vectors = cls(dim, catalogue.whitening())
        saved = saved_generations(directory)
        if (
            saved
            and saved[-1] <= catalogue.generation()
            and saved[-1] >= catalogue.removal_log_since()
        ):
            vectors.index = faiss.read_index(str(directory / f"vectors-{saved[-1]}.faiss"))
            vectors.generation = saved[-1]
        vectors.catch_up(catalogue)
        return vectors

    def catch_up(self, catalogue: Catalogue) -> bool:
        """Replay catalogue changes after this index's generation; True if any were applied."""
        target = catalogue.generation()
        if target == self.generation:
            return False
        if self.generation < catalogue.removal_log_since():  # log incomplete: start over
            self._reset(catalogue.whitening())
        stale = catalogue.ids_changed_since(self.generation)
        if len(stale):
            self.index.remove_ids(stale)  # type: ignore[arg-type]  # the wrapper takes arrays
        for ids, vectors in catalogue.vectors_since(self.generation):
            self.index.add_with_ids(self._transform(vectors), ids)
        self.generation = target
        return True

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw float32 (n, raw_dim) -> (scores float32 (n, k), ids int64 (n, k)); id -1 pads.

        ``allowed`` (int64 ids), if given, restricts the search to those ids: FAISS skips the
        others while scanning (an ``IDSelector``), rather than the caller trimming results."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.raw_dim:
            raise ValueError(f"queries must be (n, {self.raw_dim}), got {queries.shape}")
        queries = self._transform(queries)
        candidates = len(self) if allowed is None else min(len(self), len(allowed))
        if candidates == 0:
            n = len(queries)
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        k = max(1, min(k, candidates))
        if allowed is None:
            scores, ids = self.index.search(queries, k)
        else:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = faiss.SearchParameters()
            params.sel = selector
            scores, ids = self.index.search(queries, k, params=params)
        return scores, ids

    def _transform(self, vectors: np.ndarray) -> np.ndarray:
        return self.whitening.apply(vectors) if self.whitening else vectors

    def save(self, directory: Path) -> None:
        """Write ``vectors-<generation>.faiss`` atomically, then delete older files."""
        final = directory / f"vectors-{self.generation}.faiss"
        tmp = directory / f".vectors-{self.generation}.faiss.tmp"
        faiss.write_index(self.index, str(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        for generation in saved_generations(directory):
            if generation != self.generation:
                (directory / f"vectors-{generation}.faiss").unlink(missing_ok=True)


def new_flat_index(dim: int) -> faiss.Index:
    """Exact inner-product search over vectors keyed by catalogue id."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def saved_generations(directory: Path) -> list[int]:
    """Generations of the FAISS files present, oldest first."""
    found = (FILE_PATTERN.match(name) for name in os.listdir(directory))
    return sorted(int(m.group(1)) for m in found if m)
