"""The interface every model answers, free of PyTorch so that callers can name it cheaply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from lookalike.embed.classes import TopClasses


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


@runtime_checkable
class ClassifyingEmbedder(Embedder, Protocol):
    """An embedder whose network also has an ImageNet classifier (``has_classes``): it tells
    each image's top classes from the same forward pass that makes its vector."""

    @property
    def has_classes(self) -> bool: ...

    def embed_with_classes(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, list[TopClasses] | None]:
        """(what :meth:`embed` returns, each image's top classes or None without a head)."""
        ...
