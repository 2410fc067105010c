"""From decoded images to the network's input tensor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lookalike.decode.image import letterbox_resize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# How an image of any shape becomes a ``size`` x ``size`` square.
MODES = ("letterbox", "crop", "squash")


@dataclass(frozen=True)
class Preprocess:
    """Fit each image into a ``size`` x ``size`` square, then normalise with ImageNet's
    mean and std.

    Modes: ``letterbox`` (default) resizes the longer side to ``size`` and pads with the mean
    colour (zero after normalisation): the whole image is seen, a search engine must not ignore
    what is near the edges. ``crop`` resizes the shorter side and keeps the central square,
    as classifiers do (the edges of wide images are lost). ``squash`` resizes to the square
    whatever the aspect ratio (everything kept, shapes distorted).
    """

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    mode: str = "letterbox"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown preprocessing {self.mode!r}; choose from {MODES}")

    @property
    def id(self) -> str:
        return f"{self.mode}{self.size}"

    @property
    def decode_side(self) -> int:
        """Longest side the decoder must keep: crop and squash scale the shorter side to
        ``size``, so they need more than ``size`` for elongated images (up to 2:1)."""
        return self.size if self.mode == "letterbox" else 2 * self.size

    def fit(self, image: Image.Image) -> Image.Image:
        """The RGB image resized for this mode (at most ``size`` on each side)."""
        if self.mode == "letterbox":
            return letterbox_resize(image, self.size)
        image = image.convert("RGB") if image.mode != "RGB" else image
        if self.mode == "squash":
            return image.resize((self.size, self.size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        w, h = image.size
        scale = self.size / min(w, h)
        new = (max(self.size, round(w * scale)), max(self.size, round(h * scale)))
        resized = image.resize(new, Image.Resampling.BILINEAR, reducing_gap=3.0)
        left, top = (new[0] - self.size) // 2, (new[1] - self.size) // 2
        return resized.crop((left, top, left + self.size, top + self.size))

    def batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB images -> float32 (n, 3, size, size), normalised."""
        out = np.zeros((len(images), 3, self.size, self.size), dtype=np.float32)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        for i, image in enumerate(images):
            pixels = np.asarray(self.fit(image), dtype=np.float32) / 255.0
            h, w = pixels.shape[:2]
            top, left = (self.size - h) // 2, (self.size - w) // 2
            out[i, :, top : top + h, left : left + w] = ((pixels - mean) / std).transpose(2, 0, 1)
        return out
