"""The PyTorch embedder: a backbone's feature map, pooled and normalised."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from lookalike.embed.pooling import POOLINGS
from lookalike.embed.preprocess import Preprocess
from lookalike.normalise import l2_normalise


class Backbone(Protocol):
    """A network cut before its classifier (as in timm's ``forward_features``).

    A backbone may also have ``forward_head(pooled) -> embedding``, a learned head applied
    after pooling: (n, num_features) -> (n, d); the embedder then uses it and its ``dim`` is d.
    """

    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) normalised images -> (n, num_features, h, w) feature map."""
        ...

    def eval(self) -> Backbone: ...


class TorchEmbedder:
    """Backbone feature map -> pooling -> L2 normalisation, run by PyTorch on the CPU.

    With several ``scales`` the image is embedded at each (the preprocessing size times the
    scale), and the L2-normalised descriptors are averaged, then normalised again: objects
    of different sizes then meet the network's receptive fields at some scale.
    """

    def __init__(
        self,
        name: str,
        backbone: Backbone,
        preprocess: Preprocess,
        pooling: str = "gap",
        scales: Sequence[float] = (1.0,),
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {sorted(POOLINGS)}")
        if not scales or min(scales) <= 0:
            raise ValueError(f"scales must be positive, got {scales}")
        self.backbone = backbone.eval()
        self.preprocess = preprocess
        self.pooling = pooling
        self.scales = tuple(float(s) for s in scales)
        self.head: Callable[[torch.Tensor], torch.Tensor] | None = getattr(
            backbone, "forward_head", None
        )
        self.dim = self._output_dim()
        self.image_size = round(preprocess.decode_side * max(self.scales))
        self.model_id = f"{name}-{pooling}-{preprocess.id}"
        if self.scales != (1.0,):
            self.model_id += "-ms" + "_".join(f"{s:.3g}" for s in self.scales)

    @torch.inference_mode()
    def _output_dim(self) -> int:
        if self.head is None:
            return self.backbone.num_features
        return int(self.head(torch.zeros(1, self.backbone.num_features)).shape[1])

    def batch(self, images: Sequence[Image.Image], scale: float = 1.0) -> np.ndarray:
        """RGB images at ``scale`` times the preprocessing size -> float32 (n, 3, s, s)."""
        size = round(self.preprocess.size * scale)
        preprocess = (
            self.preprocess if size == self.preprocess.size else replace(self.preprocess, size=size)
        )
        return preprocess.batch(images)

    @torch.inference_mode()
    def feature_map(self, images: Sequence[Image.Image], scale: float = 1.0) -> torch.Tensor:
        """RGB images at ``scale`` times the preprocessing size -> (n, num_features, h, w)."""
        return self.backbone.forward_features(torch.from_numpy(self.batch(images, scale)))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised images (n, 3, H, W) -> vectors (n, dim) before L2 normalisation."""
        pooled = POOLINGS[self.pooling](self.backbone.forward_features(batch))
        return pooled if self.head is None else self.head(pooled)

    @torch.inference_mode()
    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return average_scales(
            [self.forward(torch.from_numpy(self.batch(images, s))).numpy() for s in self.scales]
        )


def average_scales(descriptors: Sequence[np.ndarray]) -> np.ndarray:
    """Pooled descriptors of the same images at several scales, each (n, d) -> their mean
    after L2 normalisation, L2-normalised (float32 (n, d))."""
    return l2_normalise(np.mean([l2_normalise(d) for d in descriptors], axis=0))
