from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from lookalike.embed.embedder import TorchEmbedder, average_scales
from lookalike.embed.registry import create_embedder


def test_average_scales_normalises_each_scale_first() -> None:
    small = np.array([[1.0, 0.0]], dtype=np.float32)
    large = np.array([[0.0, 100.0]], dtype=np.float32)  # its norm must not dominate
    assert average_scales([small, large]) == pytest.approx(np.array([[0.5**0.5, 0.5**0.5]]))


def test_multiscale_embedder() -> None:
    base = create_embedder("mobilenet_v2", runtime="torch")
    assert isinstance(base, TorchEmbedder)
    multi = TorchEmbedder(
        "mobilenet_v2", base.backbone, base.preprocess, scales=(1, 0.5**0.5, 2**0.5)
    )
    assert base.model_id == "mobilenet_v2-gap-letterbox224"
    assert multi.model_id == "mobilenet_v2-gap-letterbox224-ms1_0.707_1.41"
    assert multi.image_size == 317  # the decoder must keep enough pixels for the largest scale
    photos = [Image.fromarray(data.astronaut()), Image.fromarray(data.coffee())]
    single, several = base.embed(photos), multi.embed(photos)
    assert several.shape == (2, 1280) and several.dtype == np.float32
    assert np.linalg.norm(several, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    # Same images, same network: close to the single-scale vector, but not equal to it.
    cosine = (single * several).sum(axis=1)
    assert np.all(cosine > 0.8) and np.all(cosine < 0.9999)
    # The feature map at scale sqrt(2) is 317 px / 32 = 10 cells wide.
    assert multi.feature_map(photos[:1], 2**0.5).shape == (1, 1280, 10, 10)
    with pytest.raises(ValueError, match="scales"):
        TorchEmbedder("mobilenet_v2", base.backbone, base.preprocess, scales=(0.0,))
