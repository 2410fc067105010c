"""The seed CNN through the models registry, untrained (seeded) and with a weights file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from lookalike.embed.embedder import TorchEmbedder
from lookalike.embed.networks.seed_cnn import SeedCNN, seeded_seed_cnn
from lookalike.embed.registry import create_embedder, list_models
from lookalike.errors import ModelNotFoundError


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.fromarray(data.astronaut()), Image.fromarray(data.coffee())]


def test_stages_halve_the_size_and_the_head_gives_the_embedding() -> None:
    model = SeedCNN().eval()
    features = model.forward_features(torch.randn(2, 3, 128, 96))
    assert features.shape == (2, 256, 8, 6)
    assert model.forward_head(features.mean(dim=(2, 3))).shape == (2, 128)


def test_registered_and_deterministic_untrained(photos: list[Image.Image]) -> None:
    assert "seed_cnn" in list_models()
    state = torch.random.get_rng_state()
    first, second = create_embedder("seed_cnn"), create_embedder("seed_cnn")
    assert torch.equal(torch.random.get_rng_state(), state)  # the seeded init left it alone
    assert (first.dim, first.image_size) == (128, 128)
    assert first.model_id == second.model_id == "seed_cnn-gap-letterbox128"
    vectors = first.embed(photos)
    assert vectors.shape == (2, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, second.embed(photos))
    assert not np.allclose(vectors[0], vectors[1])  # different photos, different vectors


def test_trained_weights_file_changes_vectors_and_model_id(
    tmp_path: Path, photos: list[Image.Image]
) -> None:
    trained = seeded_seed_cnn(seed=7)
    path = tmp_path / "seed_cnn.pt"
    torch.save(trained.state_dict(), path)
    embedder = create_embedder("seed_cnn", weights=path, runtime="torch")
    assert embedder.model_id.startswith("seed_cnn@") and embedder.model_id.endswith("letterbox128")
    assert isinstance(embedder, TorchEmbedder)
    with torch.inference_mode():
        expected = trained.eval()(torch.from_numpy(embedder.preprocess.batch(photos)))
    expected = torch.nn.functional.normalize(expected, dim=1).numpy()
    np.testing.assert_allclose(embedder.embed(photos), expected, atol=1e-5)
    assert not np.allclose(embedder.embed(photos), create_embedder("seed_cnn").embed(photos))


def test_weights_of_another_network_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(SeedCNN(widths=(8, 16)).state_dict(), path)
    with pytest.raises(ModelNotFoundError, match="do not fit SeedCNN"):
        create_embedder("seed_cnn", weights=path, runtime="torch")
    with pytest.raises(ModelNotFoundError, match="not found"):
        create_embedder("seed_cnn", weights=tmp_path / "missing.pt")
