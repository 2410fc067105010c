"""The FAISS vector index: ids are catalogue ids; scores are inner products of unit vectors.

The file on disk, ``vectors-<generation>.faiss``, is a cache of the catalogue at that
generation, written atomically (temporary file, fsync, rename). Opening a stale or missing
file replays the catalogue's changes since, so a crash never leaves vectors out of step.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

import faiss
import numpy as np

from lookalike.errors import LookalikeWarning, StoreError
from lookalike.store.catalogue import Catalogue
from lookalike.store.whitening import Whitening

FILE_PATTERN = re.compile(r"^vectors-(\d+)\.faiss$")
TMP_PREFIX = ".vectors-"
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
        """The newest saved file, brought up to the catalogue's generation.

        A file whose checksum is not the one the catalogue recorded when it was saved (a
        damaged, truncated or foreign file), or that FAISS cannot read, is not used: the
        vectors are rebuilt from the catalogue, with one warning."""
        vectors = cls(dim, catalogue.whitening())
        saved = saved_generations(directory)
        if (
            saved
            and saved[-1] <= catalogue.generation()
            and saved[-1] >= catalogue.removal_log_since()
        ):
            path = directory / f"vectors-{saved[-1]}.faiss"
            index = _read_verified(path, catalogue.vector_file_checksum(saved[-1]), vectors.dim)
            if index is not None:
                vectors.index, vectors.generation = index, saved[-1]
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

    def save(self, directory: Path, catalogue: Catalogue) -> None:
        """Write ``vectors-<generation>.faiss`` atomically and record its checksum in the
        catalogue, then delete older files. Raises StoreError (leaving no temporary file)
        when the disk is full or not writable: the catalogue still holds every vector."""
        final = directory / f"vectors-{self.generation}.faiss"
        tmp = directory / f"{TMP_PREFIX}{self.generation}.faiss.tmp"
        try:
            faiss.write_index(self.index, str(tmp))
            checksum = file_sha256(tmp, sync=True)
            catalogue.record_vector_file(self.generation, checksum)
            os.replace(tmp, final)
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except (OSError, RuntimeError) as exc:  # FAISS reports a failed write as RuntimeError
            tmp.unlink(missing_ok=True)
            raise StoreError(
                f"cannot save the vector cache {final}: {_reason(exc)} "
                "(nothing is lost: the catalogue holds every vector)"
            ) from exc
        for generation in saved_generations(directory):
            if generation != self.generation:
                (directory / f"vectors-{generation}.faiss").unlink(missing_ok=True)
        catalogue.forget_vector_files(keep=self.generation)


def remove_temporary_files(directory: Path) -> None:
    """Delete what an interrupted save left behind (a writer calls this holding the lock)."""
    for name in os.listdir(directory):
        if name.startswith(TMP_PREFIX) and name.endswith(".tmp"):
            (directory / name).unlink(missing_ok=True)


def _read_verified(path: Path, checksum: str | None, dim: int) -> faiss.Index | None:
    """The FAISS index in ``path`` if its sha256 is ``checksum`` and it holds ``dim``-d
    vectors, else None (after one warning)."""
    try:
        if checksum is None or file_sha256(path) != checksum:
            problem = "does not match the checksum the catalogue recorded"
        else:
            index = faiss.read_index(str(path))
            if index.d == dim:
                return index
            problem = f"holds {index.d}-d vectors, not {dim}-d"
    except (OSError, RuntimeError) as exc:
        problem = f"cannot be read ({_reason(exc)})"
    warnings.warn(
        f"vector cache {path} {problem}; rebuilding it from the catalogue",
        LookalikeWarning,
        stacklevel=2,
    )
    return None


def file_sha256(path: Path, sync: bool = False) -> str:
    """Hex sha256 of a file's bytes (``sync``: and flush it to the disk first)."""
    with open(path, "rb") as fh:
        if sync:
            os.fsync(fh.fileno())
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _reason(exc: BaseException) -> str:
    """The cause in a few words: an OSError's strerror, or the parenthesised cause at the end
    of a FAISS error ("... write error in FILE: 4014 != 196608 (No space left on device)")."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    cause = re.search(r"\(([^()]+)\)$", text)
    return cause.group(1) if cause else text or type(exc).__name__


def new_flat_index(dim: int) -> faiss.Index:
    """Exact inner-product search over vectors keyed by catalogue id."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def saved_generations(directory: Path) -> list[int]:
    """Generations of the FAISS files present, oldest first."""
    found = (FILE_PATTERN.match(name) for name in os.listdir(directory))
    return sorted(int(m.group(1)) for m in found if m)
