"""Which FAISS index holds a collection of a given size, and how to build and tune it.

Small collections are searched exactly (``IndexFlatIP``). From :data:`EXACT_LIMIT` vectors
on, an inverted file with 8-bit scalar-quantised codes (``IVF<nlist>_HNSW32,SQ8``) answers in
milliseconds with a quarter of the memory: each query scans the ``nprobe`` lists nearest to it,
found through a small HNSW graph of the list centroids. ``nprobe`` is tuned at build time on
stored vectors until recall@10 against exact search reaches :data:`TARGET_RECALL`; the store
re-scores the approximate candidates with the exact stored vectors, so scores stay cosines.
The figures behind the constants are in ``benchmarks/search_scale.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import faiss
import numpy as np

# Exact search of one 1280-d query costs about 0.35 ms per 1,000 vectors here (memory bound):
# 7 ms at 20,000, where the inverted file is already faster at recall@10 above 0.97.
EXACT_LIMIT = 20_000
TARGET_RECALL = 0.97  # of the tuning queries' top 10, against exact search
NPROBES = (4, 8, 16, 32, 64, 128, 256)
TUNING_QUERIES = 200
K = 10

Chunks = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]  # (ids int64, vectors float32)


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


def build_index(dim: int, n: int, chunks: Chunks, rng: np.random.Generator) -> Built:
    """The index for ``n`` vectors read by ``chunks`` (called once per pass: an inverted file
    reads them twice, once to train on a sample and once to add them all)."""
    if n <= EXACT_LIMIT:
        index = new_exact_index(dim)
        for ids, vectors in chunks():
            index.add_with_ids(vectors, ids)
        return Built(index, None)
    nlist = wanted_nlist(n)
    index = faiss.index_factory(dim, f"IVF{nlist}_HNSW32,SQ8", faiss.METRIC_INNER_PRODUCT)
    ivf = _ivf(index)
    assert ivf is not None
    ivf.cp.niter = 10  # the lists only route queries: a rough clustering serves as well
    sample = _sample(chunks(), n, min(n, 32 * nlist), rng)
    index.train(sample)
    queries = sample[: min(TUNING_QUERIES, len(sample))]
    truth = ExactTopK(queries, K + 1)
    del sample
    for ids, vectors in chunks():
        index.add_with_ids(vectors, ids)
        truth.update(ids, vectors)
    ivf.nprobe, recall = tune_nprobe(index, queries, truth.ids)
    return Built(index, recall)


def tune_nprobe(index: faiss.Index, queries: np.ndarray, truth: np.ndarray) -> tuple[int, float]:
    """The smallest nprobe whose recall@10 reaches the target (else the largest tried), and
    that recall. ``truth``: exact top K+1 ids per query, which are stored vectors themselves:
    each query's own id is left out of both sides."""
    ivf = _ivf(index)
    assert ivf is not None
    recall = 0.0
    for nprobe in NPROBES:
        if nprobe > ivf.nlist:
            break
        ivf.nprobe = nprobe
        _, found = index.search(queries, K + 1)
        recall = recall_at_k(found, truth)
        if recall >= TARGET_RECALL:
            return nprobe, recall
    return ivf.nprobe, recall


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    """Mean share of each row's true top ``k`` found in its top ``k``, leaving out each
    row's best true hit when the rows have k+1 columns (the query itself)."""
    skip = 1 if truth.shape[1] > k else 0
    hits = [
        len(set(f[f >= 0].tolist()) - {t[0]} & set(t[skip : skip + k].tolist())) / k
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits)) if hits else 1.0


def search_params(index: faiss.Index, selector: faiss.IDSelector | None) -> faiss.SearchParameters:
    """Parameters for one search: the selector, and the index's own nprobe (an IVF search
    given parameters ignores the nprobe stored in the index)."""
    ivf = _ivf(index)
    if ivf is not None:
        for_ivf = faiss.SearchParametersIVF()
        for_ivf.nprobe = ivf.nprobe
        params: faiss.SearchParameters = for_ivf
    else:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
    return params


def describe(index: faiss.Index | None) -> str:
    """A short name of the index kind, e.g. 'flat' or 'ivf2048-sq8 nprobe=16'."""
    if index is None:
        return "flat"
    ivf = _ivf(index)
    return "flat" if ivf is None else f"ivf{ivf.nlist}-sq8 nprobe={ivf.nprobe}"


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
