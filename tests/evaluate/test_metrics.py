"""Metrics on rankings computed by hand (each expected number is worked out in a comment)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lookalike.evaluate.metrics import (
    average_precision_at_k,
    evaluate_vectors,
    map_at_r,
    precision_at_k,
    r_at_1,
    rank_all_against_all,
    recall_at_k,
)

# Two queries: A has R=2, B has R=3.
ROW_A = [1, 0, 1]
ROW_B = [0, 1, 1, 0]


def test_map_at_r_single_queries() -> None:
    # A: (1/2) * (P(1)*1 + P(2)*0) = (1/2) * 1 = 0.5 (the hit at rank 3 is beyond R).
    assert map_at_r([ROW_A], [2]) == pytest.approx(0.5)
    # B: (1/3) * (0 + (1/2)*1 + (2/3)*1) = (1/3) * (7/6) = 7/18.
    assert map_at_r([ROW_B], [3]) == pytest.approx(7 / 18)
    # Perfect: R relevant at the top.
    assert map_at_r([[1, 1, 0]], [2]) == pytest.approx(1.0)


def test_map_at_r_averages_queries_and_excludes_r_zero() -> None:
    # (0.5 + 7/18) / 2 = 4/9; a query whose label has one image (R = 0) is left out.
    assert map_at_r([ROW_A, ROW_B, [0, 0]], [2, 3, 0]) == pytest.approx(4 / 9)
    assert math.isnan(map_at_r([[0, 0]], [0]))


def test_map_at_r_needs_r_hits() -> None:
    with pytest.raises(ValueError, match="R=3"):
        map_at_r([[1, 0]], [3])


def test_average_precision_at_k() -> None:
    # A: (P(1) + P(3)) / min(2, 100) = (1 + 2/3) / 2 = 5/6.
    assert average_precision_at_k([ROW_A], [2]) == pytest.approx(5 / 6)
    # B: (P(2) + P(3)) / 3 = (1/2 + 2/3) / 3 = 7/18.
    assert average_precision_at_k([ROW_B], [3]) == pytest.approx(7 / 18)
    # k below R normalises by k: [1, 1 | 0, 1] with k=2, R=4 -> (1 + 1) / 2 = 1.
    assert average_precision_at_k([[1, 1, 0, 1]], [4], k=2) == pytest.approx(1.0)
    # Mean over A and B, R = 0 excluded: (5/6 + 7/18) / 2 = 11/18.
    assert average_precision_at_k([ROW_A, ROW_B, [1]], [2, 3, 0]) == pytest.approx(11 / 18)


def test_precision_recall_r_at_1() -> None:
    # precision@2: A 1/2, B 1/2; precision@3: A 2/3, B 2/3.
    assert precision_at_k([ROW_A, ROW_B], 2) == pytest.approx(0.5)
    assert precision_at_k([ROW_A, ROW_B], 3) == pytest.approx(2 / 3)
    # Fewer hits than k count as misses: one relevant in a 3-hit ranking -> 1/10.
    assert precision_at_k([[1, 0, 0]], 10) == pytest.approx(0.1)
    # R@1: A yes, B no -> 0.5; recall@2: both -> 1.
    assert r_at_1([ROW_A, ROW_B]) == pytest.approx(0.5)
    assert recall_at_k([ROW_A, ROW_B], 2) == pytest.approx(1.0)
    assert recall_at_k([[0, 0, 0, 1]], 3) == 0.0


def test_rank_all_against_all_excludes_self() -> None:
    v = np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    # 0's neighbours: 1 (0.8), 2 (0); 1's: 0 (0.8), 2 (0.6); 2's: 1 (0.6), 0 (0).
    assert rank_all_against_all(v, 5).tolist() == [[1, 2], [0, 2], [1, 0]]


def test_evaluate_vectors_known_answer() -> None:
    # a0=(1,0), a1=(0,1), b0=(.8,.6), b1=(.6,.8), c=(-.6,-.8) (a single image: R=0).
    vectors = np.array([[1, 0], [0, 1], [0.8, 0.6], [0.6, 0.8], [-0.6, -0.8]], dtype=np.float32)
    labels = ["a", "a", "b", "b", "c"]
    report = evaluate_vectors(vectors, labels)
    # a0 ranks b0, b1, a1, c -> [0,0,1,0], R=1: MAP@R 0, R@1 0, AP (1/3)/1.
    # a1 ranks b1, b0, a0, c -> the same. b0 ranks b1 first (0.96) -> all 1; b1 likewise.
    assert report.map_at_r == pytest.approx((0 + 0 + 1 + 1) / 4)
    assert report.r_at_1 == pytest.approx(0.5)
    assert report.map_at_100 == pytest.approx((1 / 3 + 1 / 3 + 1 + 1) / 4)
    assert report.precision_at_10 == pytest.approx(0.1)  # one relevant in ten slots
    assert (report.queries, report.excluded) == (4, 1)
    assert report.per_label["a"]["map_at_r"] == pytest.approx(0.0)
    assert report.per_label["a"]["map_at_100"] == pytest.approx(1 / 3)
    assert report.per_label["b"]["r_at_1"] == pytest.approx(1.0)
    assert report.per_label["b"]["images"] == 2
    assert math.isnan(report.per_label["c"]["map_at_r"])
    assert [label for label, _ in report.worst_labels(5)] == ["a", "b"]
    assert set(report.as_dict()) >= {
        "map_at_r",
        "r_at_1",
        "precision_at_10",
        "map_at_100",
        "per_label",
    }


def test_evaluate_vectors_separated_clusters_score_one() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(16, dtype=np.float32)[:4] * 10
    vectors = np.concatenate([c + rng.normal(0, 0.3, (12, 16)) for c in centres]).astype("f4")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = [f"l{i}" for i in range(4) for _ in range(12)]
    report = evaluate_vectors(vectors, labels)
    assert report.map_at_r == pytest.approx(1.0)
    assert report.r_at_1 == pytest.approx(1.0)
    # Each query has 11 relevant: precision@10 = 1, AP@100 = 1.
    assert report.precision_at_10 == pytest.approx(1.0)
    assert report.map_at_100 == pytest.approx(1.0)
    # Shuffled labels break the structure: MAP@R falls far below 1.
    shuffled = list(np.random.default_rng(1).permutation(labels))
    assert evaluate_vectors(vectors, shuffled).map_at_r < 0.5


def test_evaluate_vectors_checks_lengths() -> None:
    with pytest.raises(ValueError, match="2 vectors for 3 labels"):
        evaluate_vectors(np.eye(2, dtype=np.float32), ["a", "a", "b"])
