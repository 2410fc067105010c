"""A model directory reloads as the same embedder; its id follows its weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from lookalike.embed.model_dir import load_model_dir, save_model_dir
from lookalike.embed.preprocess import Preprocess
from lookalike.embed.registry import canonical_model_name, create_backbone, create_embedder
from lookalike.embed.retrieval_net import RetrievalNet
from lookalike.errors import ModelNotFoundError
from lookalike.store.whitening import Whitening


def seed_net() -> RetrievalNet:
    return RetrievalNet(create_backbone("seed_cnn"), gem_p=2.5)


def photos() -> list[Image.Image]:
    return [Image.fromarray(data.astronaut()), Image.fromarray(data.chelsea())]


def test_saved_model_embeds_as_the_network_did(tmp_path: Path) -> None:
    net = seed_net().eval()
    info = save_model_dir(tmp_path / "m", net, "seed_cnn", Preprocess(128), "# card\n")
    embedder = create_embedder(str(tmp_path / "m"))  # the registry opens directories too
    assert (embedder.model_id, embedder.dim, embedder.image_size) == (info.model_id, 128, 128)
    assert info.gem_p == pytest.approx(2.5)
    with torch.no_grad():
        expected = net(torch.from_numpy(Preprocess(128).batch(photos()))).numpy()
    vectors = embedder.embed(photos())
    assert vectors.dtype == np.float32 and vectors.shape == (2, 128)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_other_weights_make_another_model_id(tmp_path: Path) -> None:
    net = seed_net()
    first = save_model_dir(tmp_path / "a", net, "seed_cnn", Preprocess(128), "")
    with torch.no_grad():
        net.pool.p += 0.5
    second = save_model_dir(tmp_path / "b", net, "seed_cnn", Preprocess(128, mode="squash"), "")
    assert first.model_id != second.model_id
    loaded = load_model_dir(tmp_path / "b")
    assert (loaded.model_id, loaded.preprocess) == (second.model_id, Preprocess(128, mode="squash"))


def test_weights_that_do_not_match_model_json_are_refused(tmp_path: Path) -> None:
    save_model_dir(tmp_path / "m", seed_net(), "seed_cnn", Preprocess(128), "")
    (tmp_path / "m" / "weights.pt").write_bytes(b"not the weights")
    with pytest.raises(ModelNotFoundError, match="does not match"):
        load_model_dir(tmp_path / "m")


def test_a_directory_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path)
    assert canonical_model_name("m") == str(tmp_path.resolve() / "m")
    assert canonical_model_name("mobilenet_v2") == "mobilenet_v2"


def test_a_whitened_network_embeds_as_its_whitening_says_and_reloads(tmp_path: Path) -> None:
    net = seed_net().eval()
    batch = torch.from_numpy(Preprocess(128).batch(photos()))
    with torch.no_grad():
        plain = net(batch).numpy()
    rng = np.random.default_rng(0)
    whitening = Whitening(
        rng.normal(0, 0.1, 128).astype(np.float32), rng.normal(0, 1, (128, 128)).astype(np.float32)
    )
    net.set_whitening(whitening)
    with torch.no_grad():
        whitened = net(batch).numpy()
    np.testing.assert_allclose(whitened, whitening.apply(plain), atol=1e-4)
    info = save_model_dir(tmp_path / "w", net, "seed_cnn", Preprocess(128), "")
    assert (
        info.whitened
        and info.model_id
        != save_model_dir(tmp_path / "p", seed_net(), "seed_cnn", Preprocess(128), "").model_id
    )
    np.testing.assert_allclose(load_model_dir(tmp_path / "w").embed(photos()), whitened, atol=1e-5)
    net.set_whitening(None)
    with torch.no_grad():
        np.testing.assert_allclose(net(batch).numpy(), plain, atol=1e-6)
