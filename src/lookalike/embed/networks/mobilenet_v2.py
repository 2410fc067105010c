"""MobileNetV2 (Sandler et al., 2018), parameter names compatible with torchvision's."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lookalike.embed.embedder import StagedBackbone
from lookalike.embed.stages import StageInfo, resolution_stage_ends
from lookalike.embed.weights import load_state_dict

# expansion t, output channels c, repeats n, first stride s (the paper's Table 2)
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class ConvBNReLU(nn.Sequential):
    """Convolution, batch norm, ReLU6; padding keeps the size at stride 1."""

    def __init__(
        self, inputs: int, outputs: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(
                inputs,
                outputs,
                kernel_size,
                stride,
                (kernel_size - 1) // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(outputs),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, project (1x1, linear); residual when shapes allow."""

    def __init__(self, inputs: int, outputs: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = inputs * expansion
        self.use_residual = stride == 1 and inputs == outputs
        layers: list[nn.Module] = [] if expansion == 1 else [ConvBNReLU(inputs, hidden, 1)]
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, outputs, 1, bias=False),
            nn.BatchNorm2d(outputs),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(StagedBackbone):
    """ImageNet MobileNetV2 (width 1.0); ``forward_features`` ends at the 1280-channel map.

    Blocks: ``features.0`` (stem) to ``features.18`` (the 1x1 convolution to 1280 channels).
    Stages: the last block at each resolution, ``features.1`` (16 channels, stride 2), ``.3``
    (24, 4), ``.6`` (32, 8), ``.13`` (96, 16), and the final map ``features.18`` (1280, 32).
    """

    num_features = 1280

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU(3, 32, stride=2)]
        info = [StageInfo("features.0", 32, 2)]
        channels, reduction = 32, 2
        for expansion, outputs, repeats, stride in INVERTED_RESIDUAL_SETTING:
            for i in range(repeats):
                layers.append(
                    InvertedResidual(channels, outputs, stride if i == 0 else 1, expansion)
                )
                channels = outputs
                reduction *= stride if i == 0 else 1
                info.append(StageInfo(f"features.{len(info)}", channels, reduction))
        layers.append(ConvBNReLU(channels, self.num_features, 1))
        info.append(StageInfo(f"features.{len(info)}", self.num_features, reduction))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.num_features, num_classes))
        self.block_info = tuple(info)
        self.stage_ends = resolution_stage_ends(info)

    def blocks(self) -> list[nn.Module]:
        return list(self.features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) -> (n, 1280, H/32, W/32)."""
        return self.features(x)  # type: ignore[no-any-return]

    def imagenet_head(self) -> nn.Linear:
        """The ImageNet classifier on the average-pooled final map (dropout is off at inference)."""
        return self.classifier[1]  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x).mean(dim=(2, 3)))  # type: ignore[no-any-return]


def mobilenet_v2(weights: Path) -> MobileNetV2:
    """MobileNetV2 with torchvision's ImageNet weights (71.9% top-1) from the file ``weights``."""
    model = MobileNetV2()
    model.load_state_dict(load_state_dict(weights), strict=True)
    return model.eval()
