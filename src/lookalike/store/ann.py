"""Which FAISS index holds a collection of a given size, and how to build and tune it.

Small collections are searched exactly (``IndexFlatIP``). From :data:`EXACT_LIMIT` vectors
on, an inverted file with 8-bit scalar-quantised codes (``IVF<nlist>_HNSW32,SQ8``) answers in
milliseconds with a quarter of the memory: each query scans the ``nprobe`` lists nearest to it,
found through a small HNSW graph of the list centroids. ``nprobe`` is tuned at build time on
200 stored vectors held out of it until recall@10 against exact search reaches
:data:`TARGET_RECALL`; the store
re-scores the approximate candidates with the exact stored vectors, so scores stay cosines.
The figures behind the constants are in ``benchmarks/search_scale.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import faiss
import numpy as np

# Exact search of one 1280-d query costs about 0.35 ms per 1,000 vectors here (memory bound):
# 7 ms at 20,000, where the inverted file is already faster at recall@10 above 0.97.
EXACT_LIMIT = 20_000
TARGET_RECALL = 0.97  # of the tuning queries' top 10, against exact search
NPROBES = (4, 8, 16, 32, 64, 128, 256)
# Held-out stored vectors still have their near copies in the index, which flatters them:
# new photos (held-out real images) reach recall@10 0.958 with 16 lists at 100,000 vectors
# (512 lists) and 0.980 at 1,000,000 (2,048 lists), benchmarks/search_scale.py, so tuning
# starts there.
MIN_NPROBE = 16
TUNING_QUERIES = 200
PQ_BYTES = 64  # compact mode: bytes of product-quantised code per vector
K = 10

Chunks = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]  # (ids int64, vectors float32)


def shortlist(index: faiss.Index | None, k: int) -> int:
    """Candidates ``index`` proposes for ``k`` results, to be re-scored exactly: a few more
    than ``k`` from 8-bit codes, 80x from product-quantised ones (compact mode: at a million
    vectors, 16 lists, re-scored by the stored 5-bit vectors, a short list of 500 finds 0.889
    of the float32 top 10, 800 finds 0.900 and 0.965 of exact search over the stored ones)."""
    ivf = None if index is None else _ivf(index)
    if ivf is None:
        return k
    return max(80 * k, 800) if _is_pq(ivf) else k + max(k, 16)


def wanted_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest 2 sqrt(n), at least 64."""
    return max(64, int(2 ** round(float(np.log2(2 * np.sqrt(max(n, 1)))))))


def wants_rebuild(index: faiss.Index | None, n: int) -> bool:
    """True if ``index`` is the wrong kind for ``n`` vectors: exact above the limit, an
    inverted file below half of it (hysteresis), or one whose lists are too few (n grew 4x)."""
    if index is None:
        return True
    ivf = _ivf(index)
    if ivf is None:
        return n > EXACT_LIMIT
    return n < EXACT_LIMIT // 2 or wanted_nlist(n) >= 2 * ivf.nlist


def new_exact_index(dim: int) -> faiss.Index:
    """Exact inner-product search over vectors keyed by catalogue id."""
    return faiss.IndexIDMap(faiss.IndexFlatIP(dim))


@dataclass(frozen=True)
class Built:
    """A new index and what tuning it measured (None for an exact index)."""

    index: faiss.Index
    recall_at_10: float | None


def build_index(
    dim: int, n: int, chunks: Chunks, rng: np.random.Generator, compact: bool = False
) -> Built:
    """The index for ``n`` vectors read by ``chunks`` (called once per pass: an inverted file
    reads them three times, to train on a sample, to add them and to find the exact top 10
    of its tuning queries). ``compact``: 64-byte product-quantised codes instead of 8-bit
    ones (72 bytes an image in memory with its id, against 1,288)."""
    if n <= EXACT_LIMIT:
        index = new_exact_index(dim)
        for ids, vectors in chunks():
            index.add_with_ids(vectors, ids)
        return Built(index, None)
    nlist = wanted_nlist(n)
    codes = f"PQ{pq_bytes(dim)}np" if compact else "SQ8"  # np: no polysemous training (slow)
    index = faiss.index_factory(dim, f"IVF{nlist}_HNSW32,{codes}", faiss.METRIC_INNER_PRODUCT)
    ivf = _ivf(index)
    assert ivf is not None
    ivf.cp.niter = 10  # the lists only route queries: a rough clustering serves as well
    sample = _sample(chunks(), n, min(n, 48 * nlist), rng)  # FAISS wants 39 per list
    index.train(sample)
    del sample
    # The tuning queries are held out of the index until tuned, like new photos: a stored
    # vector as a query lies in its own list with its nearest neighbours, which flatters
    # recall (0.99 against 0.84 for new queries at 100,000 vectors).
    held = np.zeros(0, np.int64)
    queries = np.zeros((0, dim), np.float32)
    for ids, vectors in chunks():
        hold = rng.random(len(ids)) < TUNING_QUERIES / n
        held, queries = np.concatenate([held, ids[hold]]), np.concatenate([queries, vectors[hold]])
        index.add_with_ids(vectors[~hold], ids[~hold])
    truth = ExactTopK(queries, K)
    for ids, vectors in chunks():
        keep = ~np.isin(ids, held)
        truth.update(ids[keep], vectors[keep])
    ivf.nprobe, recall = tune_nprobe(index, queries, truth.ids)
    index.add_with_ids(queries, held)
    return Built(index, recall)


def tune_nprobe(index: faiss.Index, queries: np.ndarray, truth: np.ndarray) -> tuple[int, float]:
    """The smallest nprobe whose recall@10 reaches the target (else the largest tried), and
    that recall. ``truth``: the exact top K ids of each query (not in the index itself). A
    true neighbour counts as found when it is in the short list, which is re-scored exactly."""
    ivf = _ivf(index)
    assert ivf is not None
    recall = 0.0
    for nprobe in sorted({min(max(p, MIN_NPROBE), ivf.nlist) for p in NPROBES}):
        ivf.nprobe = nprobe
        _, found = index.search(queries, shortlist(index, K))
        recall = recall_at_k(found, truth)
        if recall >= TARGET_RECALL:
            return nprobe, recall
    return ivf.nprobe, recall


def recall_at_k(
    found: np.ndarray, truth: np.ndarray, k: int = K, self_first: bool = False
) -> float:
    """Mean share of each row's true top ``k`` that its row of ``found`` holds. With
    ``self_first`` each truth row starts with the query itself (a stored vector), which
    neither side counts."""
    skip = 1 if self_first else 0
    hits = []
    for f, t in zip(found, truth, strict=True):
        wanted = {int(i) for i in t[skip : skip + k] if i >= 0}  # fewer in a tiny index
        got = {int(i) for i in f if i >= 0} - ({int(t[0])} if self_first else set())
        if wanted:
            hits.append(len(wanted & got) / len(wanted))
    return float(np.mean(hits)) if hits else 1.0


def search(
    index: faiss.Index, queries: np.ndarray, k: int, selector: faiss.IDSelector | None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores float32 (n, k), ids int64 (n, k)) of float32 (n, dim) ``queries`` among the ids
    ``selector`` keeps, at the index's own nprobe (an IVF search given parameters ignores the
    nprobe stored in the index); (n, 0) from an empty index."""
    if index.ntotal == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    ivf = _ivf(index)
    if ivf is not None:
        for_ivf = faiss.SearchParametersIVF()
        for_ivf.nprobe = ivf.nprobe
        params: faiss.SearchParameters = for_ivf
    else:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
    return index.search(queries, k, params=params)


def describe(index: faiss.Index | None) -> str:
    """A short name of the index kind, e.g. 'flat' or 'ivf2048-sq8 nprobe=16'."""
    ivf = None if index is None else _ivf(index)
    if ivf is None:
        return "flat"
    codes = f"pq{faiss.downcast_index(ivf).pq.M}" if _is_pq(ivf) else "sq8"  # type: ignore[attr-defined]
    return f"ivf{ivf.nlist}-{codes} nprobe={ivf.nprobe}"


def pq_bytes(dim: int) -> int:
    """Bytes of product-quantised code per vector: PQ_BYTES (20 dimensions a byte at 1,280),
    or the largest divisor of ``dim`` below it and dim / 4."""
    return max(m for m in range(1, min(PQ_BYTES, max(1, dim // 4)) + 1) if dim % m == 0)


def is_approximate(index: faiss.Index | None) -> bool:
    """True for an inverted file (its candidates are re-scored), False for exact search."""
    return index is not None and _ivf(index) is not None


def _is_pq(ivf: faiss.IndexIVF) -> bool:
    return isinstance(faiss.downcast_index(ivf), faiss.IndexIVFPQ)


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:  # not an inverted file
        return None


def _sample(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], n: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """About ``size`` vectors drawn evenly from a pass over ``n``, in random order."""
    keep = size / max(n, 1)
    picked = [vectors[rng.random(len(vectors)) < keep] for _, vectors in chunks]
    sample = np.concatenate(picked) if picked else np.zeros((0, 0), np.float32)
    return np.ascontiguousarray(sample[rng.permutation(len(sample))])


def recall_of_stored(
    queries: np.ndarray,
    found: Sequence[Sequence[int]],
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
) -> float:
    """recall@K of a search's answers ``found`` (ids, best first, K + 1 asked) for stored
    vectors ``queries`` float32 (n, d), against exact search over every stored vector, read
    in ``chunks`` of (ids int64, vectors float32): each query's own vector counts for neither."""
    truth = ExactTopK(queries, K + 1)
    for ids, vectors in chunks:
        truth.update(ids, vectors)
    padded = np.full((len(queries), K + 1), -1, np.int64)
    for row, answer in enumerate(found):
        padded[row, : len(answer)] = answer[: K + 1]
    return recall_at_k(padded, truth.ids, self_first=True)


class ExactTopK:
    """The exact top ``k`` ids of fixed queries, kept up to date over chunks of a pass."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.queries, self.k = queries, k
        self.scores = np.full((len(queries), k), -np.inf, np.float32)
        self.ids = np.full((len(queries), k), -1, np.int64)

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        scores = np.concatenate([self.scores, self.queries @ vectors.T], axis=1)
        all_ids = np.concatenate([self.ids, np.broadcast_to(ids, (len(self.queries), len(ids)))], 1)
        best = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        self.scores = np.take_along_axis(scores, best, 1)
        self.ids = np.take_along_axis(all_ids, best, 1)
