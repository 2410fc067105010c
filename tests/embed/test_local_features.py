"""Local features come from the pass that makes the vectors, which they leave exactly as they
were: the strongest cells of the stride-16 map, compact and stored losslessly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from lookalike.embed.interface import LocalFeatureEmbedder
from lookalike.embed.local_features import KEEP, LocalFeatures, local_features
from lookalike.embed.registry import create_embedder


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.fromarray(getattr(data, name)()) for name in ("chelsea", "coffee")]


@pytest.mark.parametrize("runtime", ["onnx-int8", "torch"])
def test_local_features_come_with_the_very_same_vectors_and_classes(
    runtime: str, photos: list[Image.Image]
) -> None:
    embedder = create_embedder("mobilenet_v2", runtime=runtime)
    assert isinstance(embedder, LocalFeatureEmbedder) and embedder.has_local_features
    vectors, classes, local = embedder.embed_with_local_features(photos)
    assert np.array_equal(vectors, embedder.embed(photos))
    assert classes is not None
    assert [list(c.ids) for c in classes] == [
        list(c.ids) for c in embedder.embed_with_classes(photos)[1] or []
    ]
    assert len(local) == 2
    for features in local:
        assert features.descriptors.shape == (KEEP, 96) and features.positions.shape == (KEEP, 2)
        assert features.descriptors.dtype == np.float16
        norms = np.linalg.norm(features.descriptors.astype(np.float32), axis=1)
        assert np.allclose(norms, 1.0, atol=2e-3)
        assert features.positions.min() > 0 and features.positions.max() < 1
        assert len({tuple(p) for p in features.positions.tolist()}) == KEEP  # distinct cells
    assert not np.array_equal(local[0].descriptors, local[1].descriptors)


def test_the_strongest_cells_are_kept_at_their_places() -> None:
    rng = np.random.default_rng(0)
    stage = rng.random((1, 8, 4, 6)).astype(np.float32) * 0.1
    stage[0, :, 3, 5] = 5.0  # bottom-right cell strongest, then top-left
    stage[0, :, 0, 0] = 2.0
    (features,) = local_features(stage, keep=3)
    assert features.positions.shape == (3, 2)
    assert np.allclose(features.positions[0].astype(np.float32), [5.5 / 6, 3.5 / 6], atol=1e-3)
    assert np.allclose(features.positions[1].astype(np.float32), [0.5 / 6, 0.5 / 6], atol=1e-3)
    assert np.allclose(features.descriptors[0].astype(np.float32), np.full(8, 8**-0.5), atol=1e-3)


def test_bytes_round_trip() -> None:
    rng = np.random.default_rng(1)
    (features,) = local_features(rng.random((1, 16, 14, 14)).astype(np.float32), keep=10)
    again = LocalFeatures.from_bytes(*features.to_bytes())
    assert np.array_equal(again.positions, features.positions)
    assert np.array_equal(again.descriptors, features.descriptors)
    assert features.nbytes == 10 * 2 * 2 + 10 * 16 * 2
