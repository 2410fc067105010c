"""Retrieval metrics: plain functions on rankings, and an exact all-against-all evaluation.

A *relevance row* is one query's ranking as 0/1 flags, best hit first, the query itself
excluded. ``n_relevant`` (R) is how many relevant items the whole collection holds for that
query, ranked or not.

- MAP@R (Musgrave, Belongie and Lim, "A Metric Learning Reality Check", 2020):
  ``(1/R) * sum_{i<=R} P(i) * rel(i)``, with P(i) the precision of the first i hits.
  A query with R = 0 (its label has a single image) has no answer to find: it is excluded
  from MAP@R, R@1, precision@10 and mAP@100 averages alike.
- R@1: 1 if the first hit is relevant.
- precision@k: relevant hits among the first k, divided by k.
- AP@k (mAP@100 with k = 100): ``sum_{i<=k} P(i) * rel(i) / min(R, k)``.
- recall@k (copy detection, one original per query): 1 if a relevant item is in the first k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Rankings: (queries, ranked hits) 0/1 flags; ragged rows are fine as sequences.
Relevance = Sequence[Sequence[int | bool]] | np.ndarray


def _rows(relevance: Relevance) -> list[np.ndarray]:
    return [np.asarray(row, dtype=np.float64).reshape(-1) for row in relevance]


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def map_at_r(relevance: Relevance, n_relevant: Sequence[int]) -> float:
    """Mean over queries of MAP@R; rows must hold at least R ranked hits. Queries with R = 0
    are excluded (nan if none is left)."""
    scores = []
    for row, r in zip(_rows(relevance), n_relevant, strict=True):
        if r == 0:
            continue
        if len(row) < r:
            raise ValueError(f"MAP@R needs the first R={r} hits, the ranking has {len(row)}")
        top = row[:r]
        precision = np.cumsum(top) / np.arange(1, r + 1)
        scores.append(float((precision * top).sum() / r))
    return _mean(scores)


def average_precision_at_k(relevance: Relevance, n_relevant: Sequence[int], k: int = 100) -> float:
    """Mean over queries of AP@k, normalised by min(R, k); R = 0 queries excluded."""
    scores = []
    for row, r in zip(_rows(relevance), n_relevant, strict=True):
        if r == 0:
            continue
        top = row[:k]
        precision = np.cumsum(top) / np.arange(1, len(top) + 1)
        scores.append(float((precision * top).sum() / min(r, k)))
    return _mean(scores)


def precision_at_k(relevance: Relevance, k: int = 10) -> float:
    """Mean over queries of (relevant hits in the first k) / k."""
    return _mean([float(row[:k].sum() / k) for row in _rows(relevance)])


def recall_at_k(relevance: Relevance, k: int = 1) -> float:
    """Mean over queries of 1 if any of the first k hits is relevant (copy detection)."""
    return _mean([float(row[:k].any()) for row in _rows(relevance)])


def r_at_1(relevance: Relevance) -> float:
    """Mean over queries of 1 if the first hit is relevant (recall@1)."""
    return recall_at_k(relevance, 1)


@dataclass(frozen=True)
class RetrievalReport:
    """Averages over the queries that have at least one other image of their label.

    ``per_label`` maps each label to the same four metrics over its queries, plus
    ``images`` (the label's size); labels with a single image get nan metrics.
    ``queries`` counts the queries averaged, ``excluded`` those with R = 0.
    """

    map_at_r: float
    r_at_1: float
    precision_at_10: float
    map_at_100: float
    per_label: dict[str, dict[str, float]] = field(default_factory=dict)
    queries: int = 0
    excluded: int = 0

    def worst_labels(self, n: int = 5) -> list[tuple[str, dict[str, float]]]:
        """The ``n`` labels with the lowest MAP@R (labels without a score left out)."""
        scored = [(k, v) for k, v in self.per_label.items() if not np.isnan(v["map_at_r"])]
        return sorted(scored, key=lambda kv: kv[1]["map_at_r"])[:n]

    def as_dict(self) -> dict[str, object]:
        return {
            "map_at_r": self.map_at_r,
            "r_at_1": self.r_at_1,
            "precision_at_10": self.precision_at_10,
            "map_at_100": self.map_at_100,
            "queries": self.queries,
            "excluded": self.excluded,
            "per_label": self.per_label,
        }


def rank_all_against_all(vectors: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine ranking: for float32 (n, d) L2-normalised rows, the (n, min(k, n-1)) ids
    of each row's nearest other rows, most similar first (itself excluded)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be (n, d), got shape {vectors.shape}")
    n = len(vectors)
    k = min(k, n - 1)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.int64)
    # Stable sort on -similarity: ties keep id order, so results are reproducible.
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def evaluate_ranking(ranked: np.ndarray, labels: Sequence[str]) -> RetrievalReport:
    """Score rankings (n, k) of ids into ``labels`` (query i is item i; k must be at least the
    largest R, i.e. the largest label size minus one, for MAP@R to be exact)."""
    names = np.asarray(labels, dtype=object)
    n = len(names)
    if ranked.shape[0] != n:
        raise ValueError(f"{ranked.shape[0]} rankings for {n} labels")
    _, inverse, counts = np.unique(names.astype(str), return_inverse=True, return_counts=True)
    n_relevant = counts[inverse] - 1
    relevance = names[ranked] == names[:, None]
    if n_relevant.max(initial=0) > relevance.shape[1]:
        raise ValueError("rankings are shorter than the largest R: pass more hits per query")
    keep = n_relevant > 0

    def scores(rows: np.ndarray, r: np.ndarray) -> dict[str, float]:
        return {
            "map_at_r": map_at_r(rows, list(r)),
            "r_at_1": r_at_1(rows),
            "precision_at_10": precision_at_k(rows, 10),
            "map_at_100": average_precision_at_k(rows, list(r), 100),
        }

    overall = scores(relevance[keep], n_relevant[keep])
    per_label: dict[str, dict[str, float]] = {}
    for label in sorted(set(names.astype(str))):
        members = (names == label) & keep
        size = int((names == label).sum())
        per_label[label] = {**scores(relevance[members], n_relevant[members]), "images": size}
    return RetrievalReport(
        **overall, per_label=per_label, queries=int(keep.sum()), excluded=int((~keep).sum())
    )


def evaluate_vectors(vectors: np.ndarray, labels: Sequence[str]) -> RetrievalReport:
    """Each of the n float32 (n, d) L2-normalised vectors queries all the others (exact cosine
    ranking); relevant = same label. Returns MAP@R, R@1, precision@10, mAP@100."""
    if len(vectors) != len(labels):
        raise ValueError(f"{len(vectors)} vectors for {len(labels)} labels")
    _, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    depth = max(100, int(counts.max(initial=1)) - 1)
    return evaluate_ranking(rank_all_against_all(vectors, depth), labels)
