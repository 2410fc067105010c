"""ImageNet classes come from the same pass as the vectors, which they leave exactly as they
were, and agree with the network's own classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from lookalike.embed.classes import TopClasses, head_path
from lookalike.embed.embedder import TorchEmbedder
from lookalike.embed.interface import ClassifyingEmbedder
from lookalike.embed.onnx import OnnxEmbedder
from lookalike.embed.registry import create_embedder, model_classifies

ESPRESSO, TABBY, TIGER_CAT, EGYPTIAN_CAT = 967, 281, 282, 285


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.fromarray(getattr(data, name)()) for name in ("chelsea", "coffee")]


@pytest.mark.parametrize("runtime", ["onnx-int8", "torch"])
def test_classes_come_with_the_very_same_vectors(runtime: str, photos: list[Image.Image]) -> None:
    embedder = create_embedder("mobilenet_v2", runtime=runtime)
    assert isinstance(embedder, ClassifyingEmbedder) and embedder.has_classes
    vectors, classes = embedder.embed_with_classes(photos)
    assert np.array_equal(vectors, embedder.embed(photos))
    assert classes is not None and len(classes) == 2
    cat, coffee = classes
    # In the top 3, not first: int8 kernels round differently by CPU (on AVX2 without VNNI,
    # int8 calls the coffee a cup first).
    assert int(cat.ids[0]) in {TABBY, TIGER_CAT, EGYPTIAN_CAT} and ESPRESSO in coffee.ids[:3]
    assert cat.ids.dtype == np.uint16 and cat.probs.dtype == np.float16 and len(cat.ids) == 10
    assert (
        np.all(np.diff(cat.probs.astype(np.float32)) <= 0) and 0.5 < float(cat.probs.sum()) <= 1.01
    )


def test_probabilities_are_the_networks_own_classifier(photos: list[Image.Image]) -> None:
    embedder = create_embedder("mobilenet_v2", runtime="torch")
    assert isinstance(embedder, TorchEmbedder)
    _, classes = embedder.embed_with_classes(photos)
    with torch.inference_mode():  # MobileNetV2.forward: the classifier as torchvision runs it
        logits = embedder.backbone.forward(torch.from_numpy(embedder.batch(photos)))  # type: ignore[attr-defined]
    expected = torch.softmax(logits, dim=1).numpy()
    assert classes is not None
    for top, probs in zip(classes, expected, strict=True):
        assert list(top.ids[:3]) == list(np.argsort(-probs)[:3])
        assert np.allclose(top.probs.astype(np.float32), probs[top.ids], atol=2e-3)


def test_onnx_head_is_cached_beside_the_graph(photos: list[Image.Image]) -> None:
    embedder = create_embedder("mobilenet_v2", runtime="onnx-int8")
    assert isinstance(embedder, OnnxEmbedder)
    embedder.embed_with_classes(photos)
    assert head_path(embedder.float_path).is_file()


def test_stored_form_round_trips() -> None:
    top = TopClasses(np.array([3, 999], np.uint16), np.array([0.75, 0.125], np.float16))
    back = TopClasses.from_bytes(*top.to_bytes())
    assert back.ids.tolist() == [3, 999] and back.probs.tolist() == [0.75, 0.125]


def test_models_without_imagenet_classifier_have_none(photos: list[Image.Image]) -> None:
    seed = create_embedder("seed_cnn")
    assert isinstance(seed, ClassifyingEmbedder) and not seed.has_classes
    assert seed.embed_with_classes(photos)[1] is None
    assert model_classifies("mobilenet_v2") and model_classifies("efficientnet_lite0")
    assert not model_classifies("seed_cnn") and not model_classifies("clip:/nowhere")
