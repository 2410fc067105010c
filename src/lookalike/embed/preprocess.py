"""From decoded images to the network's input tensor, and back from its cells to pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# How an image of any shape becomes a ``size`` x ``size`` square.
MODES = ("letterbox", "crop", "squash")


@dataclass(frozen=True)
class Geometry:
    """Where one image lands in the ``size`` x ``size`` network input.

    The image (``width`` x ``height`` pixels) is resized to ``resized`` and its top-left
    corner put at (``offset_x``, ``offset_y``) of the input: input x = image x * scale_x +
    offset_x. Letterbox offsets are the padding (>= 0); crop offsets are negative (the cut
    edges); squash scales the two axes differently.
    """

    width: int
    height: int
    size: int
    resized: tuple[int, int]
    offset_x: int
    offset_y: int

    @property
    def scale_x(self) -> float:
        return self.resized[0] / self.width

    @property
    def scale_y(self) -> float:
        return self.resized[1] / self.height

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        """A point of the network input (pixels) -> the same point in the image's pixels."""
        return (x - self.offset_x) / self.scale_x, (y - self.offset_y) / self.scale_y

    def cell_box(
        self, row: int, col: int, rows: int, cols: int
    ) -> tuple[float, float, float, float]:
        """Cell (row, col) of a (rows, cols) feature map -> (left, top, right, bottom) in the
        image's pixels: the cell's share of the input grid (its receptive field is larger).
        Cells over letterbox padding lie partly or wholly outside (0, 0, width, height)."""
        if not (0 <= row < rows and 0 <= col < cols):
            raise ValueError(f"cell ({row}, {col}) is outside a {rows}x{cols} map")
        left, top = self.to_image(col * self.size / cols, row * self.size / rows)
        right, bottom = self.to_image((col + 1) * self.size / cols, (row + 1) * self.size / rows)
        return left, top, right, bottom


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

    def geometry(self, width: int, height: int) -> Geometry:
        """Where a ``width`` x ``height`` image lands in the network input, for this mode."""
        size = self.size
        if self.mode == "squash":
            return Geometry(width, height, size, (size, size), 0, 0)
        if self.mode == "letterbox":
            scale = size / max(width, height)
            resized = (max(1, round(width * scale)), max(1, round(height * scale)))
            return Geometry(
                width, height, size, resized, (size - resized[0]) // 2, (size - resized[1]) // 2
            )
        scale = size / min(width, height)
        resized = (max(size, round(width * scale)), max(size, round(height * scale)))
        return Geometry(
            width, height, size, resized, -((resized[0] - size) // 2), -((resized[1] - size) // 2)
        )

    def fit(self, image: Image.Image) -> Image.Image:
        """The RGB image resized for this mode and cut to the input square: (at most) ``size``
        on each side; :meth:`geometry` says where it goes."""
        image = image.convert("RGB") if image.mode != "RGB" else image
        geometry = self.geometry(*image.size)
        if geometry.resized != image.size:
            image = image.resize(geometry.resized, Image.Resampling.BILINEAR, reducing_gap=3.0)
        if self.mode != "crop":
            return image
        left, top = -geometry.offset_x, -geometry.offset_y
        return image.crop((left, top, left + self.size, top + self.size))

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
