"""From decoded images to the network's input tensor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Letterbox: resize the longer side to ``size`` and pad to a square.

    Padding (with the mean colour, zero after normalisation) rather than a centre crop keeps
    the whole image: a search engine must not ignore what is near the edges.
    """

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def id(self) -> str:
        return f"letterbox{self.size}"

    def batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB images -> float32 (n, 3, size, size), normalised."""
        out = np.zeros((len(images), 3, self.size, self.size), dtype=np.float32)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        for i, image in enumerate(images):
            pixels = np.asarray(letterbox_resize(image, self.size), dtype=np.float32) / 255.0
            h, w = pixels.shape[:2]
            top, left = (self.size - h) // 2, (self.size - w) // 2
            out[i, :, top : top + h, left : left + w] = ((pixels - mean) / std).transpose(2, 0, 1)
        return out


def letterbox_resize(image: Image.Image, size: int) -> Image.Image:
    """Resize so the longer side is ``size`` pixels, keeping the aspect ratio (RGB out)."""
    image = image.convert("RGB") if image.mode != "RGB" else image
    w, h = image.size
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return (
        image if new == (w, h) else image.resize(new, Image.Resampling.BILINEAR, reducing_gap=3.0)
    )
