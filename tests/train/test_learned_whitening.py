"""Whitening learned after training: chosen by validation, none where none helps."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from lookalike.evaluate.metrics import evaluate_vectors
from lookalike.train.whitening import SHRINKAGES, fit_label_whitening


def test_the_shrinkage_best_on_validation_is_kept(
    styled_vectors: Callable[..., tuple[np.ndarray, list[str]]],
) -> None:
    x, names = styled_vectors(0)
    val, val_names = styled_vectors(1)
    fitted = fit_label_whitening(x, names, val, val_names)
    assert set(fitted.validation) == {None, *SHRINKAGES}
    assert fitted.shrinkage == max(fitted.validation, key=lambda s: fitted.validation[s][0])
    assert fitted.whitening is not None
    whitened = evaluate_vectors(fitted.whitening.apply(val), val_names).map_at_r
    assert whitened == pytest.approx(fitted.validation[fitted.shrinkage][0])
    assert whitened > fitted.validation[None][0] + 0.5  # the styles no longer hide the labels


def test_no_whitening_where_the_plain_vectors_do_best() -> None:
    # Training images of one label differ most along the six directions that tell the
    # validation labels apart: whitening shrinks just what validation needs.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 8)
    x = rng.normal(0, 0.1, (48, 16))
    x[:, 6:] += rng.normal(0, 1, (6, 10))[labels]
    x[:, :6] += rng.normal(0, 10, (48, 6))
    val = rng.normal(0, 0.15, (48, 16))
    val[np.arange(48), labels] += 1.0
    names = [f"train{label}" for label in labels]
    val_names = [f"val{label}" for label in labels]
    fitted = fit_label_whitening(x.astype(np.float32), names, val.astype(np.float32), val_names)
    assert fitted.validation[None][0] > max(v[0] for s, v in fitted.validation.items() if s)
    assert (fitted.whitening, fitted.shrinkage) == (None, None)


def test_one_vector_per_label_is_left_plain(
    styled_vectors: Callable[..., tuple[np.ndarray, list[str]]],
) -> None:
    x, names = styled_vectors(0, per_label=1)
    val, val_names = styled_vectors(1)
    fitted = fit_label_whitening(x, names, val, val_names)
    assert (fitted.whitening, list(fitted.validation)) == (None, [None])
