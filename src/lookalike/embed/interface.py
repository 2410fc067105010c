"""The interface every model answers, free of PyTorch so that callers can name it cheaply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from lookalike.embed.classes import TopClasses
from lookalike.embed.local_features import LocalFeatures


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


@runtime_checkable
class LocalFeatureEmbedder(ClassifyingEmbedder, Protocol):
    """An embedder that also gives each image's local features (``has_local_features``),
    for spatial re-ranking (:mod:`lookalike.search.spatial`), from the pass that makes its
    vector and classes."""

    @property
    def has_local_features(self) -> bool: ...

    def embed_with_local_features(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, list[TopClasses] | None, list[LocalFeatures]]:
        """(what :meth:`embed_with_classes` returns, each image's local features)."""
        ...
