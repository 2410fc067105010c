"""The interface every model answers, free of PyTorch so that callers can name it cheaply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


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
