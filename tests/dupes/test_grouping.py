"""Complete linkage over nearest-neighbour pairs: no chaining, verdicts respected."""

from __future__ import annotations

import numpy as np

from lookalike.dupes.grouping import candidate_pairs, complete_linkage


def unit(*rows: list[float]) -> np.ndarray:
    vectors = np.asarray(rows, np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def exact_space(vectors: np.ndarray, k: int):  # type: ignore[no-untyped-def]
    """The k nearest neighbours by brute force, as a store's exact index answers them."""

    def neighbours(ids: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = queries @ vectors.T
        order = np.argsort(-scores, axis=1)[:, :k]
        return order.astype(np.int64), np.take_along_axis(scores, order, 1)

    def similarity(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return vectors[left] @ vectors[right].T

    return neighbours, similarity


# A chain: 0 ~ 1 (0.95), 1 ~ 2 (0.95), but 0 and 2 only 0.81; 3 stands apart.
CHAIN = unit([1.0, 0.0, 0.0], [0.95, 0.3122, 0.0], [0.81, 0.5864, 0.0], [0.0, 0.0, 1.0])


def test_candidate_pairs_are_each_pair_once_with_its_score() -> None:
    neighbours, _ = exact_space(CHAIN, 3)
    ids = np.arange(4)
    pairs = candidate_pairs([(ids[:2], CHAIN[:2]), (ids[2:], CHAIN[2:])], neighbours, 0.5)
    found = {
        (int(a), int(b)): round(float(s), 2)
        for a, b, s in zip(pairs.a, pairs.b, pairs.score, strict=True)
    }
    assert found == {(0, 1): 0.95, (1, 2): 0.95, (0, 2): 0.81}


def test_a_chain_does_not_become_one_group() -> None:
    neighbours, similarity = exact_space(CHAIN, 3)
    ids = np.arange(4)
    pairs = candidate_pairs([(ids, CHAIN)], neighbours, 0.9)
    groups = complete_linkage(pairs, 0.9, similarity)
    assert len(groups) == 1 and sorted(groups[0]) in ([0, 1], [1, 2])
    # At a threshold the far pair passes, all three are one group.
    pairs = candidate_pairs([(ids, CHAIN)], neighbours, 0.8)
    assert [sorted(g) for g in complete_linkage(pairs, 0.8, similarity)] == [[0, 1, 2]]


def test_pairs_marked_apart_never_share_a_group() -> None:
    neighbours, similarity = exact_space(CHAIN, 3)
    ids = np.arange(4)
    pairs = candidate_pairs([(ids, CHAIN)], neighbours, 0.8)
    groups = complete_linkage(pairs, 0.8, similarity, apart={(0, 2)})
    assert len(groups) == 1 and sorted(groups[0]) in ([0, 1], [1, 2])
    assert complete_linkage(pairs, 0.8, similarity, apart={(0, 1), (0, 2), (1, 2)}) == []
