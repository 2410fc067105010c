"""The embedder interface every model answers, and its PyTorch implementation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from lookalike.embed.pooling import POOLINGS, l2_normalise
from lookalike.embed.preprocess import Preprocess


@runtime_checkable
class Embedder(Protocol):
    """Turns images into comparable vectors.

    ``model_id`` names the vector space: two vectors are comparable only when made by
    embedders with the same id. ``image_size`` tells the decoder how large an image needs
    to be (it may decode smaller JPEG scales above that size).
    """

    model_id: str
    dim: int
    image_size: int

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB images; returns float32 (n, dim), each row L2-normalised."""
        ...


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
    """Backbone feature map -> pooling -> L2 normalisation, run by PyTorch on the CPU."""

    def __init__(
        self, name: str, backbone: Backbone, preprocess: Preprocess, pooling: str = "gap"
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {sorted(POOLINGS)}")
        self.backbone = backbone.eval()
        self.preprocess = preprocess
        self.pooling = pooling
        self.head: Callable[[torch.Tensor], torch.Tensor] | None = getattr(
            backbone, "forward_head", None
        )
        self.dim = self._output_dim()
        self.image_size = preprocess.size
        self.model_id = f"{name}-{pooling}-{preprocess.id}"

    @torch.inference_mode()
    def _output_dim(self) -> int:
        if self.head is None:
            return self.backbone.num_features
        return int(self.head(torch.zeros(1, self.backbone.num_features)).shape[1])

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised images (n, 3, H, W) -> vectors (n, dim) before L2 normalisation."""
        pooled = POOLINGS[self.pooling](self.backbone.forward_features(batch))
        return pooled if self.head is None else self.head(pooled)

    @torch.inference_mode()
    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.forward(torch.from_numpy(self.preprocess.batch(images)))
        return l2_normalise(vectors.numpy().astype(np.float32, copy=False))
