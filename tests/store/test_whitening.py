from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from lookalike.evaluate.metrics import evaluate_vectors
from lookalike.store.whitening import (
    Whitening,
    learn_centring,
    learn_label_whitening,
    learn_whitening,
)


def correlated(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Vectors with a few strong, correlated directions, as pooled CNN features have."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(10.0, 0.1, d)
    mixing = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return ((rng.normal(size=(n, d)) * scales) @ mixing + 5.0).astype(np.float32)


def test_plain_whitening_gives_identity_covariance() -> None:
    x = correlated(2000, 16)
    w = learn_whitening(x, shrinkage=0.0)
    z = (x - w.mean) @ w.projection
    assert np.cov(z, rowvar=False, bias=True) == pytest.approx(np.eye(16), abs=1e-3)


def test_apply_is_l2_normalised_float32_and_reduces_dims() -> None:
    x = correlated(500, 16)
    w = learn_whitening(x, dims=4)
    out = w.apply(x[:10])
    assert (out.dtype, out.shape, w.dim) == (np.float32, (10, 4), 4)
    assert np.linalg.norm(out, axis=1) == pytest.approx(np.ones(10), abs=1e-5)
    # The kept directions are the strongest: the first carries most of the raw variance.
    projected = (x - w.mean) @ w.projection
    assert np.argmax(np.var(projected * np.sqrt(np.var(projected, axis=0)), axis=0)) == 0


def test_shrinkage_guards_fewer_vectors_than_dimensions() -> None:
    x = correlated(10, 64)  # rank 9 covariance: plain whitening would divide by ~0
    out = learn_whitening(x).apply(correlated(5, 64, seed=1))
    assert np.isfinite(out).all()
    assert np.linalg.norm(out, axis=1) == pytest.approx(np.ones(5), abs=1e-5)


def test_whitening_helps_against_dominant_nuisance_directions() -> None:
    # Four classes apart in 16 dims; four strong random directions hide them from the cosine.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    x = rng.normal(0, 1, (4, 16))[labels] * 0.3 + rng.normal(0, 0.1, (40, 16))
    x[:, :4] += rng.normal(0, 5.0, (40, 4))
    x = x.astype(np.float32)
    names = [str(label) for label in labels]
    raw = evaluate_vectors(x / np.linalg.norm(x, axis=1, keepdims=True), names).map_at_r
    whitened = evaluate_vectors(learn_whitening(x).apply(x), names).map_at_r
    assert raw < 0.2  # about chance (0.1)
    assert whitened > 2 * raw


def test_centring_removes_what_every_vector_shares() -> None:
    # Four classes apart in 16 dims, all riding on one large shared direction (as pooled
    # activations do): the cosine sees the shared part; centring takes it away, no rotation.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    x = rng.normal(0, 1, (4, 16))[labels] * 0.3 + rng.normal(0, 0.3, (40, 16)) + 4.0
    x = x.astype(np.float32)
    names = [str(label) for label in labels]
    centring = learn_centring(x)
    assert centring.centres_only and not learn_whitening(x).centres_only
    assert centring.dim == 16 and np.allclose(centring.mean, x.mean(axis=0), atol=1e-5)
    raw = evaluate_vectors(x / np.linalg.norm(x, axis=1, keepdims=True), names).map_at_r
    centred = evaluate_vectors(centring.apply(x), names).map_at_r
    assert centred > raw + 0.05  # 0.62 -> 0.69
    with pytest.raises(ValueError, match="centring needs"):
        learn_centring(np.ones((0, 4), dtype=np.float32))


def test_bytes_round_trip() -> None:
    w = learn_whitening(correlated(100, 8), dims=6)
    back = Whitening.from_bytes(w.to_bytes())
    assert np.array_equal(back.mean, w.mean)
    assert np.array_equal(back.projection, w.projection)
    assert back.projection.dtype == np.float32


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="n >= 2"):
        learn_whitening(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="dims"):
        learn_whitening(correlated(10, 4), dims=5)
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        learn_whitening(correlated(10, 4)).apply(np.ones((2, 3), dtype=np.float32))


def test_label_whitening_learns_what_varies_within_a_label_for_other_labels(
    styled_vectors: Callable[..., tuple[np.ndarray, list[str]]],
) -> None:
    x, names = styled_vectors(0)
    held_out, held_names = styled_vectors(1)  # other labels, the same styles
    w = learn_label_whitening(x, names, shrinkage=0.1)
    assert (w.dim, w.projection.dtype) == (16, np.float32)
    out = w.apply(held_out)
    assert np.linalg.norm(out, axis=1) == pytest.approx(np.ones(len(out)), abs=1e-5)
    unit = held_out / np.linalg.norm(held_out, axis=1, keepdims=True)
    raw = evaluate_vectors(unit, held_names).map_at_r
    assert raw < 0.3  # the styles hide the labels
    assert evaluate_vectors(out, held_names).map_at_r > 0.9  # 0.24 -> 0.997


def test_label_whitening_bad_input(
    styled_vectors: Callable[..., tuple[np.ndarray, list[str]]],
) -> None:
    x, names = styled_vectors(0)
    with pytest.raises(ValueError, match="at least 2 labels"):
        learn_label_whitening(x[:8], names[:8])  # one label
    with pytest.raises(ValueError, match="n labels"):
        learn_label_whitening(x, names[:-1])
    with pytest.raises(ValueError, match="shrinkage"):
        learn_label_whitening(x, names, shrinkage=-1)
