"""The vector index of an embedded store: a saved base plus an in-memory delta.

``vectors-<generation>.faiss`` (the *base*) holds the vectors of the catalogue at that
generation, in the kind of index :mod:`lookalike.store.ann` chooses for its size. It is written
atomically (temporary file, fsync, rename), its checksum recorded in the catalogue, and read
memory-mapped: opening costs milliseconds and the pages are shared by every process.

What changed since the base (the *delta*) is replayed from the catalogue on open: new or
replaced vectors go into a small exact index in memory, and the base's stale ids are *hidden*
(an ``IDSelector``), so what was written is searchable, exactly, at once. A writer folds the
delta into a new base only when that pays (:func:`VectorIndex.wants_merge`): a small
collection at every write run, a large one when its delta outgrows :data:`DELTA_LIMIT`, so an
update of a million-image index does not rewrite a whole-collection file.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np

from lookalike.errors import LookalikeWarning, StoreError
from lookalike.store import ann
from lookalike.store.catalogue import Catalogue
from lookalike.store.whitening import Whitening

FILE_PATTERN = re.compile(r"^vectors-(\d+)\.faiss$")
TMP_PREFIX = ".vectors-"
VECTOR_INDEX_KIND = "faiss"  # recorded in the catalogue: a base file and a replayed delta
# Above this many changed vectors the delta is folded into a new base: replaying 20,000
# vectors from the catalogue costs a reader about 0.3 s and 100 MB.
DELTA_LIMIT = 20_000
FULL_CHECK_BYTES = 64 << 20  # a larger base is verified on open by sampled blocks
SAMPLE_BLOCKS, SAMPLE_BLOCK_BYTES = 64, 64 << 10
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


class VectorIndex:
    """The base (memory-mapped, never modified) plus the delta, at one catalogue generation.

    With a whitening stored in the catalogue, both hold whitened vectors and queries are
    whitened the same way; the catalogue keeps the raw ones.
    """

    def __init__(self, dim: int, whitening: Whitening | None = None) -> None:
        self.raw_dim = dim
        self._reset(whitening)

    def _reset(self, whitening: Whitening | None) -> None:
        """Empty, at generation 0, holding vectors transformed by ``whitening``."""
        self.whitening = whitening
        self.dim = whitening.dim if whitening else self.raw_dim
        self.base: faiss.Index | None = None
        self.base_generation: int | None = None
        self.delta: faiss.Index = ann.new_exact_index(self.dim)
        self.hidden = np.zeros(0, np.int64)  # base ids whose vector was removed or replaced
        self.generation = 0
        self.size = 0  # vectors searched: the catalogue's embedded images at `generation`

    def __len__(self) -> int:
        return self.size

    @property
    def approximate(self) -> bool:
        """True if the base is an approximate index (its scores are re-scored exactly)."""
        return ann.is_approximate(self.base)

    def shortlist(self, k: int) -> int:
        """Candidates to ask :meth:`search` for, to re-score exactly for ``k`` results."""
        return ann.shortlist(self.base, k)

    @classmethod
    def load(cls, directory: Path, dim: int, catalogue: Catalogue) -> VectorIndex:
        """The newest usable base, memory-mapped, with the catalogue's later changes replayed.

        A base whose checksum is not the one the catalogue recorded when it was saved (a
        damaged, truncated or foreign file), or that FAISS cannot read, is not used: its
        vectors are replayed from the catalogue instead, with one warning."""
        vectors = cls(dim, catalogue.whitening())
        generation = usable_base(directory, catalogue)
        if generation is not None:
            base = read_base(directory, generation, catalogue, vectors.dim)
            if base is not None:
                vectors.base, vectors.base_generation = base, generation
                vectors.generation = generation
        vectors.catch_up(catalogue)
        vectors.size = catalogue.count("ok")
        return vectors

    def outdated(self, directory: Path, catalogue: Catalogue) -> bool:
        """True if this index cannot simply catch up: a writer saved a newer base (whose
        pruned logs no longer reach back to this one), or changed the whitening."""
        return (
            self.generation < catalogue.removal_log_since()
            or usable_base(directory, catalogue) != self.base_generation
        )

    def catch_up(self, catalogue: Catalogue) -> bool:
        """Replay catalogue changes after this index's generation; True if any were applied.
        Callers check :meth:`outdated` first."""
        target = catalogue.generation()
        if target == self.generation:
            return False
        stale = catalogue.ids_changed_since(self.generation)
        if len(stale):
            self.delta.remove_ids(stale)  # type: ignore[arg-type]  # the wrapper takes arrays
            if self.base is not None:
                self.hidden = np.union1d(self.hidden, stale)
        for ids, vectors in catalogue.vectors_since(self.generation):
            self.delta.add_with_ids(self.transform(vectors), ids)
        self.generation = target
        self.size = catalogue.count("ok")
        return True

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw float32 (n, raw_dim) -> (scores float32 (n, k), ids int64 (n, k)); id -1 pads.

        ``allowed`` (int64 ids, ascending), if given, restricts the search to those ids: FAISS
        skips the others while scanning (an ``IDSelector``), rather than the caller trimming
        results. Scores from an approximate base are approximate: see :meth:`approximate`."""
        queries = np.asarray(queries)
        if queries.ndim != 2 or queries.shape[1] != self.raw_dim:
            raise ValueError(f"queries must be (n, {self.raw_dim}), got {queries.shape}")
        queries = self.transform(queries)
        n = len(queries)
        candidates = len(self) if allowed is None else min(len(self), len(allowed))
        if candidates == 0:
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        k = max(1, min(k, candidates))
        parts = [ann.search(self.delta, queries, k, _only(allowed))]
        if self.base is not None:
            hidden = _only(self.hidden) if len(self.hidden) else None  # outlives `selector`
            if allowed is not None:
                selector = _only(np.setdiff1d(allowed, self.hidden, assume_unique=True))
            else:
                selector = faiss.IDSelectorNot(hidden) if hidden is not None else None
            parts.append(ann.search(self.base, queries, k, selector))
        scores = np.concatenate([s for s, _ in parts], axis=1)
        ids = np.concatenate([i for _, i in parts], axis=1)
        scores[ids < 0] = -np.inf
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, best, 1), np.take_along_axis(ids, best, 1)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Raw vectors float32 (n, raw_dim) as this index compares them (whitened, if)."""
        raw = np.ascontiguousarray(raw, dtype=np.float32)
        return self.whitening.apply(raw) if self.whitening else raw


def _only(ids: np.ndarray | None) -> faiss.IDSelector | None:
    return None if ids is None else faiss.IDSelectorBatch(np.ascontiguousarray(ids, np.int64))


def wants_merge(directory: Path, catalogue: Catalogue) -> bool:
    """True if a writer should save a new base: there is none (or none usable) yet, the
    collection is small enough to rewrite cheaply, the delta outgrew :data:`DELTA_LIMIT`, or
    the base is the wrong kind for the collection's size now."""
    generation = usable_base(directory, catalogue)
    if generation is None:
        return True
    changed = len(catalogue.ids_changed_since(generation))
    if changed == 0:
        return False
    n = catalogue.count("ok")
    if n <= ann.EXACT_LIMIT or changed >= DELTA_LIMIT:
        return True
    base = read_base(directory, generation, catalogue, _dim(catalogue))
    return ann.wants_rebuild(base, n)


def save_base(directory: Path, catalogue: Catalogue, rng: np.random.Generator) -> str:
    """Build the base for the catalogue's current vectors and save it at its generation, then
    delete older bases; returns the kind saved. Raises StoreError (leaving no temporary file)
    when the disk is full or not writable: the catalogue still holds every vector.

    The existing base is re-used when it is still the right kind (its lists and quantiser
    stay; stale ids are removed and new vectors added), else a new one is trained."""
    generation = catalogue.generation()
    whitening = catalogue.whitening()
    n = catalogue.count("ok")
    index = None
    old = usable_base(directory, catalogue)
    if old is not None and old < generation:
        _return_freed_memory_promptly()
        index = read_base(directory, old, catalogue, _dim(catalogue), mapped=False)
    if index is not None and not ann.wants_rebuild(index, n):
        stale = catalogue.ids_changed_since(old or 0)
        if len(stale):
            index.remove_ids(stale)  # type: ignore[arg-type]
        for ids, vectors in _whitened_chunks(catalogue, whitening, old or 0):
            index.add_with_ids(vectors, ids)
        recall = None
    else:
        built = _build(catalogue, whitening, rng)
        index, recall = built.index, built.recall_at_10
    tmp, checksums = _write_temporary(directory, generation, index)
    catalogue.record_vector_file(generation, *checksums)
    return _publish(directory, generation, tmp, index, recall, catalogue)


def change_whitening(
    directory: Path, catalogue: Catalogue, whitening: Whitening | None, rng: np.random.Generator
) -> int:
    """Make ``whitening`` the one searches go through (None: none), with its base built
    first: the base of every stored vector under it is written before the catalogue commits
    the change, in the same transaction as the base's checksums. Readers so go from the old
    base to the new one: none replays the whole collection into memory meanwhile (at 200,000
    images, 24 s and 1.5 GB for a reader's first hit while the writer rebuilt). Returns the
    new generation."""
    built = _build(catalogue, whitening, rng)
    generation = catalogue.generation() + 1
    tmp, checksums = _write_temporary(directory, generation, built.index)
    try:
        committed = catalogue.set_whitening(whitening, checksums)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    assert committed == generation  # the caller holds the writer lock
    _publish(directory, generation, tmp, built.index, built.recall_at_10, catalogue)
    return generation


def _whitened_chunks(
    catalogue: Catalogue, whitening: Whitening | None, since: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for ids, raw in catalogue.vectors_since(since):
        yield ids, whitening.apply(raw) if whitening else raw


def _build(
    catalogue: Catalogue, whitening: Whitening | None, rng: np.random.Generator
) -> ann.Built:
    """A new base of every stored vector under ``whitening``."""
    return ann.build_index(
        whitening.dim if whitening else catalogue.dim,
        catalogue.count("ok"),
        lambda: _whitened_chunks(catalogue, whitening),
        rng,
        compact=catalogue.codec.name != "float32",
    )


def _return_freed_memory_promptly() -> None:
    """Have glibc give large freed blocks back to the system at once. FAISS grows an inverted
    list by copying it; glibc's adaptive threshold then serves the copies from the heap and
    keeps the freed ones: merging 20,000 vectors into a million-image base peaked at 2.0 GB,
    against 1.6 GB with a fixed threshold (the base alone is 1.3 GB)."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 256 << 10)


def _write_temporary(
    directory: Path, generation: int, index: faiss.Index
) -> tuple[Path, tuple[str, str]]:
    """Write the base of ``generation`` to a temporary file, flushed to the disk; (its path,
    (sha256 of every byte, of sampled blocks)). StoreError, leaving nothing, on failure."""
    tmp = directory / f"{TMP_PREFIX}{generation}.faiss.tmp"
    try:
        faiss.write_index(index, str(tmp))
        return tmp, (file_sha256(tmp, sync=True), sampled_sha256(tmp))
    except (OSError, RuntimeError) as exc:  # FAISS reports a failed write as RuntimeError
        tmp.unlink(missing_ok=True)
        raise _cannot_save(directory, generation, exc) from exc


def _publish(
    directory: Path,
    generation: int,
    tmp: Path,
    index: faiss.Index,
    recall: float | None,
    catalogue: Catalogue,
) -> str:
    """Rename the recorded temporary base into ``vectors-<generation>.faiss``, drop older
    bases and note the new one's kind and measured recall; returns the kind."""
    final = directory / f"vectors-{generation}.faiss"
    try:
        os.replace(tmp, final)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _cannot_save(directory, generation, exc) from exc
    for old in saved_generations(directory):
        if old != generation:
            (directory / f"vectors-{old}.faiss").unlink(missing_ok=True)
    catalogue.forget_vector_files(keep=generation)
    if recall is not None:
        catalogue.record_recall(generation, recall, "tuning queries at build")
    catalogue.prune_removal_log(generation)
    kind = ann.describe(index)
    catalogue.set_meta({"vector_base": kind})
    return kind


def _cannot_save(directory: Path, generation: int, exc: BaseException) -> StoreError:
    return StoreError(
        f"cannot save the vector cache {directory / f'vectors-{generation}.faiss'}: "
        f"{_reason(exc)} (nothing is lost: the catalogue holds every vector)"
    )


def usable_base(directory: Path, catalogue: Catalogue) -> int | None:
    """The generation of the newest saved base the catalogue's logs can bring up to date."""
    saved = saved_generations(directory)
    if saved and catalogue.removal_log_since() <= saved[-1] <= catalogue.generation():
        return saved[-1]
    return None


def read_base(
    directory: Path, generation: int, catalogue: Catalogue, dim: int, mapped: bool = True
) -> faiss.Index | None:
    """The base saved at ``generation`` if it passes its checksum and holds ``dim``-d
    vectors, else None (after one warning). ``mapped``: memory-mapped, read-only."""
    path = directory / f"vectors-{generation}.faiss"
    full = catalogue.vector_file_checksum(generation)
    sampled = catalogue.vector_file_sample(generation)
    try:
        size = path.stat().st_size
        if size <= FULL_CHECK_BYTES or sampled is None:
            ok = full is not None and file_sha256(path) == full
        else:
            ok = sampled_sha256(path) == sampled
        if not ok:
            problem = "does not match the checksum the catalogue recorded"
        else:
            flags = faiss.IO_FLAG_MMAP_IFC if mapped else 0
            index = faiss.read_index(str(path), flags)
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


def _dim(catalogue: Catalogue) -> int:
    whitening = catalogue.whitening()
    return whitening.dim if whitening else catalogue.dim


def remove_temporary_files(directory: Path) -> None:
    """Delete what an interrupted save left behind (a writer calls this holding the lock)."""
    for name in os.listdir(directory):
        if name.startswith(TMP_PREFIX) and name.endswith(".tmp"):
            (directory / name).unlink(missing_ok=True)


def file_sha256(path: Path, sync: bool = False) -> str:
    """Hex sha256 of a file's bytes (``sync``: and flush it to the disk first)."""
    with open(path, "rb") as fh:
        if sync:
            os.fsync(fh.fileno())
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sampled_sha256(path: Path) -> str:
    """Hex sha256 of a file's size and of blocks spread evenly over it (the first and last
    included): reads about 4 MB of a base of any size, and catches a truncated, zeroed or
    overwritten file on open; ``lookalike check`` verifies every byte."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        digest.update(size.to_bytes(8, "little"))
        last = max(0, size - SAMPLE_BLOCK_BYTES)
        for offset in sorted({last * i // (SAMPLE_BLOCKS - 1) for i in range(SAMPLE_BLOCKS)}):
            fh.seek(offset)
            digest.update(fh.read(SAMPLE_BLOCK_BYTES))
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    """The cause in a few words: an OSError's strerror, or the parenthesised cause at the end
    of a FAISS error ("... write error in FILE: 4014 != 196608 (No space left on device)")."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    cause = re.search(r"\(([^()]+)\)$", text)
    return cause.group(1) if cause else text or type(exc).__name__


def saved_generations(directory: Path) -> list[int]:
    """Generations of the FAISS files present, oldest first."""
    found = (FILE_PATTERN.match(name) for name in os.listdir(directory))
    return sorted(int(m.group(1)) for m in found if m)
