"""EfficientNet-Lite: the published weights load strictly and the networks see a cat."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch import nn

from lookalike.embed.embedder import TorchEmbedder
from lookalike.embed.networks.efficientnet_lite import EfficientNetLite, SameConv2d, round_filters
from lookalike.embed.pooling import gem
from lookalike.embed.registry import (
    create_backbone,
    create_embedder,
    model_classifies,
    model_entry,
)
from lookalike.normalise import l2_normalise

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
def test_imagenet_classifier_sees_a_cat(name: str) -> None:
    """Weights, layer order and preprocessing are all right only if the cat is a cat."""
    embedder = create_embedder(name, runtime="torch")
    assert isinstance(embedder, TorchEmbedder)
    network = embedder.backbone
    assert isinstance(network, nn.Module)
    batch = torch.from_numpy(embedder.preprocess.batch([Image.fromarray(data.chelsea())]))
    with torch.inference_mode():
        probabilities = network(batch).softmax(dim=1)[0]
    assert probabilities.argmax().item() in IMAGENET_CATS
    assert probabilities[list(IMAGENET_CATS)].sum().item() > 0.6


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_larger_variants_match_their_published_weights(name: str) -> None:
    """Widths and depths scaled as TensorFlow scales them, or the strict load would fail."""
    network = create_backbone(name)
    assert isinstance(network, EfficientNetLite)
    assert len(network._blocks) == 21  # 16 in lite0: depth 1.1 and 1.2 round up alike


def test_lite0_embedder_shape_and_preprocessing() -> None:
    embedder = create_embedder("efficientnet_lite0", runtime="torch")
    assert (embedder.dim, embedder.image_size) == (1280, 224)
    assert embedder.model_id == "efficientnet_lite0-gap-letterbox224"
    assert isinstance(embedder, TorchEmbedder)
    assert embedder.preprocess.mean == pytest.approx((0.498,) * 3, abs=1e-3)  # TF's (x-127)/128
    vectors = embedder.embed([Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())])
    assert vectors.shape == (2, 1280)
    assert float(vectors[0] @ vectors[1]) < 0.9  # a cat and a cup of coffee differ


def test_lite0_gem_pools_the_same_network_by_generalised_mean() -> None:
    """Another vector space from the same weights: GeM of lite0's final map."""
    gem_model = create_embedder("efficientnet_lite0_gem", runtime="torch")
    gap_model = create_embedder("efficientnet_lite0", runtime="torch")
    assert isinstance(gem_model, TorchEmbedder) and isinstance(gap_model, TorchEmbedder)
    assert gem_model.model_id == "efficientnet_lite0_gem-gem-letterbox224"
    assert model_entry("efficientnet_lite0_gem").int8
    cat = [Image.fromarray(data.chelsea())]
    final = gap_model.feature_map(cat)
    expected = l2_normalise(gem(final).numpy())
    assert np.allclose(gem_model.embed(cat), expected, atol=1e-5)
    assert float(gem_model.embed(cat)[0] @ gap_model.embed(cat)[0]) < 0.99


@pytest.mark.parametrize("runtime", ["torch", "onnx", "onnx-int8"])
def test_a_gem_model_classifies_by_the_average_beside_its_vector(runtime: str) -> None:
    """The ImageNet classifier reads the average-pooled map, not the GeM vector: a cat."""
    assert model_classifies("efficientnet_lite0_gem")
    embedder = create_embedder("efficientnet_lite0_gem", runtime=runtime)
    images = [Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())] * 8
    vectors, classes, _ = embedder.embed_with_local_features(images)
    assert classes is not None
    assert int(classes[0].ids[0]) in IMAGENET_CATS and float(classes[0].probs[0]) > 0.3
    assert int(classes[1].ids[0]) not in IMAGENET_CATS
    alone, only_classes = embedder.embed_with_classes(images[:2])
    assert only_classes is not None and only_classes[0].ids[0] == classes[0].ids[0]
    assert np.allclose(alone, vectors[:2], atol=1e-4)


def test_same_padding_puts_the_extra_pixel_bottom_right() -> None:
    conv = SameConv2d(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    out = conv(torch.ones(1, 1, 4, 4))[0, 0]
    assert out.shape == (2, 2)  # ceil(4 / 2)
    # top-left window starts on the image (no padding there); bottom-right overlaps padding
    assert out.tolist() == [[9.0, 6.0], [6.0, 4.0]]


def test_round_filters_matches_the_tensorflow_rule() -> None:
    assert [round_filters(f, 1.1) for f in (16, 24, 40, 80, 112, 192, 320)] == [
        16,
        24,
        48,
        88,
        120,
        208,
        352,
    ]
