"""Groups of duplicates from nearest neighbours, never from all pairs.

Each image asks the vector index for its ``k`` nearest neighbours (whatever index the store
has: exact, IVF or HNSW), so the cost is that of ``n`` searches, about ``n log n`` with an
approximate index. Pairs at or above the threshold are then merged by **complete linkage**:
strongest pair first, two groups join only if *every* pair across them is at or above the
threshold. A group is therefore a clique: A~B and B~C with A and C unrelated never land
together (single linkage, i.e. connected components, would chain them), and a pair a person
marked "not duplicates" splits any group it would fall in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

# (ids int64 (m,), their stored vectors float32 (m, d)) -> (neighbour ids int64 (m, k), -1
# where missing; cosine scores float32 (m, k)): the k nearest neighbours of those images
Neighbours = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# ids int64 (p,), ids int64 (q,) -> cosine scores float32 (p, q) of their stored vectors
Similarity = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Pairs:
    """Candidate pairs, ``a < b``, each once: int64 (e,), int64 (e,), float32 (e,); and the
    transform turning ``a`` into ``b`` for pairs matched turned or mirrored."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray
    transforms: dict[tuple[int, int], str]

    def __len__(self) -> int:
        return len(self.a)

    def known(self) -> dict[tuple[int, int], float]:
        return {
            (int(a), int(b)): float(s) for a, b, s in zip(self.a, self.b, self.score, strict=True)
        }


def candidate_pairs(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], neighbours: Neighbours, floor: float
) -> Pairs:
    """Every (image, neighbour) pair scoring at least ``floor``, over the images of
    ``chunks`` ((ids, vectors) batches, each one call of ``neighbours``)."""
    found_a, found_b, found_s = [], [], []
    for ids, vectors in chunks:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            continue
        near, scores = neighbours(ids, vectors)
        mine = np.broadcast_to(ids[:, None], near.shape)
        keep = (near >= 0) & (near != mine) & (scores >= floor)
        a, b = mine[keep], near[keep]
        found_a.append(np.minimum(a, b))
        found_b.append(np.maximum(a, b))
        found_s.append(scores[keep].astype(np.float32))
    if not found_a:
        empty = np.zeros(0, np.int64)
        return Pairs(empty, empty, np.zeros(0, np.float32), {})
    a, b, s = np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_s)
    order = np.lexsort((-s, b, a))  # by pair, best score first: keep the first of each
    a, b, s = a[order], b[order], s[order]
    first = np.ones(len(a), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return Pairs(a[first], b[first], s[first], {})


def complete_linkage(
    pairs: Pairs,
    threshold: float,
    similarity: Similarity,
    apart: set[tuple[int, int]] | frozenset[tuple[int, int]] = frozenset(),
) -> list[list[int]]:
    """Groups (each >= 2 ids, strongest pair's ids first) of the pairs at or above
    ``threshold`` such that every two members score at least ``threshold`` and no two are
    ``apart`` (pairs a < b). A pair's score is the better of ``similarity`` and its score in
    ``pairs`` (which may come from a turned copy)."""
    known = pairs.known()
    group_of: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for index in np.argsort(-pairs.score, kind="stable"):
        if pairs.score[index] < threshold:
            break
        a, b = int(pairs.a[index]), int(pairs.b[index])
        if (a, b) in apart:
            continue
        ga, gb = group_of.get(a, a), group_of.get(b, b)
        if ga == gb:
            continue
        left, right = members.get(ga, [a]), members.get(gb, [b])
        if (len(left) > 1 or len(right) > 1) and not _all_pass(
            left, right, threshold, similarity, known, apart
        ):
            continue
        if len(left) < len(right):
            ga, gb, left, right = gb, ga, right, left
        members[ga] = left + right
        members.pop(gb, None)
        for member in members[ga]:
            group_of[member] = ga
    return list(members.values())


def _all_pass(
    left: list[int],
    right: list[int],
    threshold: float,
    similarity: Similarity,
    known: dict[tuple[int, int], float],
    apart: set[tuple[int, int]] | frozenset[tuple[int, int]],
) -> bool:
    """Whether every pair across ``left`` and ``right`` may be in one group."""
    pairs = [(min(x, y), max(x, y)) for x in left for y in right]
    if apart and any(pair in apart for pair in pairs):
        return False
    scores = similarity(np.asarray(left, np.int64), np.asarray(right, np.int64)).ravel()
    for pair, score in zip(pairs, scores, strict=True):
        if score < threshold and known.get(pair, -1.0) < threshold:
            return False
    return True
