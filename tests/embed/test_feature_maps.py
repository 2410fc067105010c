"""feature_maps: what the network sees in real photos, for built-in models (run by PyTorch or
ONNX Runtime, float or int8) and trained model directories alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from lookalike.embed.model_dir import load_model_dir, save_model_dir
from lookalike.embed.onnx import OnnxEmbedder
from lookalike.embed.preprocess import Preprocess
from lookalike.embed.registry import create_backbone, create_embedder, create_torch_embedder
from lookalike.embed.retrieval_net import RetrievalNet
from lookalike.normalise import l2_normalise


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.fromarray(data.chelsea()), Image.fromarray(data.rocket())]  # wide, tall


def test_the_final_map_pools_into_the_vector(photos: list[Image.Image]) -> None:
    embedder = create_torch_embedder("mobilenet_v2")
    maps = embedder.feature_maps(photos, indices=[0, -1])
    assert maps.final.dtype == np.float32 and maps.final.shape == (2, 1280, 7, 7)
    assert [s.stride for s in maps.stage_info] == [2, 32]
    assert [m.shape for m in maps.stages] == [(2, 16, 112, 112), (2, 1280, 7, 7)]
    vectors = l2_normalise(maps.final.mean(axis=(2, 3)))  # gap pooling
    np.testing.assert_allclose(vectors, embedder.embed(photos), atol=1e-5)
    assert maps.geometry == [embedder.preprocess.geometry(*p.size) for p in photos]


def test_letterbox_padding_cells_see_no_image(photos: list[Image.Image]) -> None:
    """The wide cat has padding above and below: seed_cnn's first pooled map is zero there
    (a convolution of zeros plus batch norm's shift, the same in every padding cell)."""
    maps = create_torch_embedder("seed_cnn").feature_maps(photos[:1], indices=[1])
    pooled = maps.stages[0][0]  # (32, 64, 64): pool1, stride 2
    geometry = maps.geometry[0]
    rows = [
        r
        for r in range(64)
        if geometry.cell_box(r, 0, 64, 64)[3] <= 0  # above the photo
    ]
    assert rows and rows == list(range(len(rows)))
    padding = pooled[:, rows[:-1]]  # the last such row's window also sees the photo's edge
    assert np.ptp(padding, axis=(1, 2)).max() < 1e-5  # one value per channel: nothing seen
    assert np.ptp(pooled[:, 32], axis=1).max() > 0.1  # the middle row sees the cat


def test_int8_models_show_the_float_network(photos: list[Image.Image]) -> None:
    int8 = create_embedder("mobilenet_v2", runtime="onnx-int8")
    assert isinstance(int8, OnnxEmbedder)
    maps = int8.feature_maps(photos, indices=1)
    expected = create_torch_embedder("mobilenet_v2").feature_maps(photos, indices=1)
    np.testing.assert_array_equal(maps.final, expected.final)


def test_trained_model_directories_show_their_backbone(
    tmp_path: Path, photos: list[Image.Image]
) -> None:
    net = RetrievalNet(create_backbone("seed_cnn"), gem_p=2.5).eval()
    save_model_dir(tmp_path / "m", net, "seed_cnn", Preprocess(128), "")
    embedder = load_model_dir(tmp_path / "m")
    maps = embedder.feature_maps(photos)
    assert len(maps.stages) == len(maps.stage_info) == 8
    with torch.inference_mode():
        vectors = embedder.net.embed_features(torch.from_numpy(maps.final)).numpy()
    np.testing.assert_allclose(vectors, embedder.embed(photos), atol=1e-5)
