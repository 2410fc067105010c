"""What each network sees of a real photo: the documented stage shapes (README), the first
filters, and the strongest channels' maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.embed.registry import create_embedder, create_torch_embedder
from lookalike.explain.layers import layer_views

# (stage, kind, channels x height x width) per model, as the README's table documents them.
SHAPES = {
    "seed_cnn": [
        ("features.0", "ConvBlock", (32, 128, 128)),
        ("features.1", "MaxPool", (32, 64, 64)),
        ("features.2", "ConvBlock", (64, 64, 64)),
        ("features.3", "MaxPool", (64, 32, 32)),
        ("features.4", "ConvBlock", (128, 32, 32)),
        ("features.5", "MaxPool", (128, 16, 16)),
        ("features.6", "ConvBlock", (256, 16, 16)),
        ("features.7", "MaxPool", (256, 8, 8)),
    ],
    "mobilenet_v2": [
        ("features.1", "InvertedResidual", (16, 112, 112)),
        ("features.3", "InvertedResidual", (24, 56, 56)),
        ("features.6", "InvertedResidual", (32, 28, 28)),
        ("features.13", "InvertedResidual", (96, 14, 14)),
        ("features.18", "ConvBNReLU", (1280, 7, 7)),
    ],
    "efficientnet_lite0": [
        ("_blocks.0", "MBConvBlock", (16, 112, 112)),
        ("_blocks.2", "MBConvBlock", (24, 56, 56)),
        ("_blocks.4", "MBConvBlock", (40, 28, 28)),
        ("_blocks.10", "MBConvBlock", (112, 14, 14)),
        ("_conv_head", "Conv2d", (1280, 7, 7)),
    ],
    "efficientnet_lite1": [
        ("_blocks.0", "MBConvBlock", (16, 120, 120)),
        ("_blocks.3", "MBConvBlock", (24, 60, 60)),
        ("_blocks.6", "MBConvBlock", (40, 30, 30)),
        ("_blocks.14", "MBConvBlock", (112, 15, 15)),
        ("_conv_head", "Conv2d", (1280, 8, 8)),
    ],
    "efficientnet_lite2": [
        ("_blocks.0", "MBConvBlock", (16, 130, 130)),
        ("_blocks.3", "MBConvBlock", (24, 65, 65)),
        ("_blocks.6", "MBConvBlock", (48, 33, 33)),
        ("_blocks.14", "MBConvBlock", (120, 17, 17)),
        ("_conv_head", "Conv2d", (1280, 9, 9)),
    ],
}


@pytest.fixture(scope="module")
def chelsea(photo_library: Path) -> Image.Image:
    return Image.open(photo_library / "chelsea.jpg").convert("RGB")


@pytest.mark.parametrize("model", sorted(SHAPES))
def test_every_model_shows_its_documented_stages(model: str, chelsea: Image.Image) -> None:
    embedder = create_torch_embedder(model)
    views = layer_views(embedder, chelsea, channels=3)
    assert [(s.name, s.kind, s.shape) for s in views.stages] == SHAPES[model]
    size = embedder.preprocess.size
    assert views.input.shape == (size, size, 3) and views.input.dtype == np.uint8
    assert views.filters.shape == (32, 3, 3, 3)
    assert views.filter_stride == (1 if model == "seed_cnn" else 2)
    for stage in views.stages:
        c, h, w = stage.shape
        assert stage.maps.shape == (3, h, w) and len(set(stage.channels)) == 3
        means = stage.maps.mean(axis=(1, 2))
        assert list(means) == sorted(means, reverse=True)  # strongest first
        assert size // stage.stride in (h, h - 1)  # "SAME" padding rounds up (lite2: 260/8)
        assert all(0 <= ch < c for ch in stage.channels)


def test_an_int8_model_shows_its_float_network(chelsea: Image.Image) -> None:
    int8 = layer_views(create_embedder("mobilenet_v2", runtime="onnx-int8"), chelsea)
    float32 = layer_views(create_torch_embedder("mobilenet_v2"), chelsea)
    assert "int8" in int8.model_id
    np.testing.assert_array_equal(int8.stages[-1].maps, float32.stages[-1].maps)
    np.testing.assert_array_equal(int8.filters, float32.filters)
    # the letterbox padding is the mean colour, rows above and below the cat
    assert (int8.input[0] == int8.input[0, 0]).all() and int8.input[112].std() > 10
