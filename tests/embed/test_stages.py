"""Every backbone answers forward_intermediates: one pass, the final map and its stages' maps,
each as deep and as coarse as stage_info says without running it."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from skimage import data

from lookalike.embed.registry import create_torch_embedder
from lookalike.embed.stages import StageInfo, resolution_stage_ends, select_stages

# (channels, stride) of each stage: see each network's docstring
STAGES = {
    "mobilenet_v2": [(16, 2), (24, 4), (32, 8), (96, 16), (1280, 32)],
    "efficientnet_lite0": [(16, 2), (24, 4), (40, 8), (112, 16), (1280, 32)],
    # every convolution block, then every pooling: deeper, then halved
    "seed_cnn": [(32, 1), (32, 2), (64, 2), (64, 4), (128, 4), (128, 8), (256, 8), (256, 16)],
}


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.fromarray(data.chelsea()), Image.fromarray(data.text())]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_one_pass_gives_the_final_map_and_each_stage(name: str, photos: list[Image.Image]) -> None:
    embedder = create_torch_embedder(name)
    backbone = embedder.backbone
    batch = torch.from_numpy(embedder.preprocess.batch(photos))
    with torch.inference_mode():
        final, maps = backbone.forward_intermediates(batch)
        expected = backbone.forward_features(batch)
        chained = batch
        for block in backbone.blocks():
            chained = block(chained)
    assert torch.equal(final, expected) and torch.equal(chained, expected)
    info = backbone.stage_info()
    assert [(s.channels, s.stride) for s in info] == STAGES[name]
    modules = dict(backbone.named_modules())  # type: ignore[attr-defined]
    assert all(stage.name in modules for stage in info)  # names are module paths
    size = embedder.preprocess.size
    assert [tuple(m.shape) for m in maps] == [
        (2, s.channels, math.ceil(size / s.stride), math.ceil(size / s.stride)) for s in info
    ]
    assert torch.equal(maps[-1], final)  # the last stage is the final map
    assert len({m.data_ptr() for m in maps}) == len(maps)  # each its own block's output


def test_chosen_stages_only(photos: list[Image.Image]) -> None:
    embedder = create_torch_embedder("seed_cnn")
    batch = torch.from_numpy(embedder.preprocess.batch(photos))
    with torch.inference_mode():
        _, every = embedder.backbone.forward_intermediates(batch)
        _, last_two = embedder.backbone.forward_intermediates(batch, indices=2)
        _, picked = embedder.backbone.forward_intermediates(batch, indices=[-1, 0])
    assert [torch.equal(a, b) for a, b in zip(last_two, every[-2:], strict=True)] == [True] * 2
    assert torch.equal(picked[0], every[0]) and torch.equal(picked[1], every[-1])


def test_stage_numbers_as_timm_takes_them() -> None:
    assert select_stages(None, 4) == [0, 1, 2, 3]
    assert select_stages(2, 4) == [2, 3]
    assert select_stages([3, -4, 0], 4) == [0, 3]
    for wrong in (0, 5, [4], [-5]):
        with pytest.raises(ValueError):
            select_stages(wrong, 4)


def test_a_stage_ends_where_the_resolution_halves() -> None:
    blocks = [StageInfo(f"b{i}", 8, stride) for i, stride in enumerate([2, 2, 4, 8, 8, 8])]
    assert resolution_stage_ends(blocks) == (1, 2, 5)
