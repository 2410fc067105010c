"""The seed CNN: the course's network, assembled from the parts in :mod:`lookalike.embed.layers`.

Four stages, each a 3x3 convolution (zero padding keeps the size), batch normalisation and ReLU,
then 2x2 max pooling that halves the size, while the number of filters doubles from 32 to 256.
Global pooling and a fully connected head turn the last feature map into a 128-d embedding.

For ``forward_intermediates`` every convolution block and every pooling is a stage
(``features.0`` to ``features.7``), so that a learner sees the maps grow deeper (32 to 256
channels) at one size, then halve in size.

It ships without pretrained weights (``lookalike.train`` trains it). Untrained, its weights come
from a fixed seed, so its vectors are the same on every run and its indexes stay searchable.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lookalike.embed.embedder import StagedBackbone
from lookalike.embed.layers import ConvBlock, FullyConnected, MaxPool
from lookalike.embed.stages import StageInfo
from lookalike.embed.weights import load_weights

WIDTHS = (32, 64, 128, 256)  # filters per stage
EMBEDDING_DIM = 128
# The untrained network's vectors come from this seed: changing it changes them, under the
# same model id (bump lookalike.embed.onnx.EXPORT_VERSION too, or stale exports are reused).
INIT_SEED = 0


class SeedCNN(StagedBackbone):
    """(n, 3, H, W) -> feature map (n, 256, H/16, W/16) -> pooled (n, 256) -> embedding (n, 128)."""

    def __init__(
        self, widths: tuple[int, ...] = WIDTHS, embedding_dim: int = EMBEDDING_DIM
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        info: list[StageInfo] = []
        channels, stride = 3, 1
        for width in widths:
            stages += [ConvBlock(channels, width), MaxPool()]
            info += [
                StageInfo(f"features.{len(info)}", width, stride),
                StageInfo(f"features.{len(info) + 1}", width, stride * 2),
            ]
            channels, stride = width, stride * 2
        self.features = nn.Sequential(*stages)
        self.num_features = channels
        self.head = FullyConnected(channels, embedding_dim)
        self.block_info = tuple(info)
        self.stage_ends = tuple(range(len(info)))  # every block: see the module's docstring

    def blocks(self) -> list[nn.Module]:
        return list(self.features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (n, 3, H, W) -> feature map (n, num_features, H/16, W/16)."""
        return self.features(x)  # type: ignore[no-any-return]

    def forward_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Pooled features (n, num_features) -> embedding (n, embedding_dim), not normalised."""
        return self.head(pooled)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> embeddings, with global average pooling (what training optimises)."""
        return self.forward_head(self.forward_features(x).mean(dim=(2, 3)))


def seeded_seed_cnn(seed: int = INIT_SEED) -> SeedCNN:
    """A SeedCNN whose random initial weights depend on ``seed`` only (the global RNG is kept)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SeedCNN()


def seed_cnn(weights: Path | None = None) -> SeedCNN:
    """The seed CNN: trained weights from ``weights`` (a state dict), else the seeded init."""
    model = seeded_seed_cnn()
    if weights is not None:
        load_weights(model, weights)
    return model.eval()
