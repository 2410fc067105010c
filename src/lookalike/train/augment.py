"""Augmentations for retrieval training: the same thing framed, mirrored and lit differently.

Random resized crop, horizontal flip and colour jitter, on PIL images, each draw taken from a
``random.Random`` the caller seeds, so a training run is reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageEnhance, ImageOps

# Images to be augmented are decoded this much larger than the network's input, so that a
# crop of a third of the image is not blown up from a thumbnail.
DECODE_SCALE = 1.5


@dataclass(frozen=True)
class Augment:
    """``scale``: crop area as a fraction of the image; ``ratio``: crop aspect ratio range;
    ``jitter``: brightness, contrast and saturation factors drawn from [1-jitter, 1+jitter]."""

    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    jitter: float = 0.3

    def __call__(self, image: Image.Image, rng: random.Random) -> Image.Image:
        image = random_resized_crop(image, rng, self.scale, self.ratio)
        if self.flip and rng.random() < 0.5:
            image = ImageOps.mirror(image)
        if self.jitter > 0:
            image = colour_jitter(image, rng, self.jitter)
        return image


def random_resized_crop(
    image: Image.Image, rng: random.Random, scale: tuple[float, float], ratio: tuple[float, float]
) -> Image.Image:
    """A crop of random area and aspect ratio (the caller resizes it, e.g. by letterbox)."""
    w, h = image.size
    for _ in range(10):
        area = w * h * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return image.crop((left, top, left + cw, top + ch))
    return image  # no crop of that shape fits (a very thin image): keep it whole


def colour_jitter(image: Image.Image, rng: random.Random, amount: float) -> Image.Image:
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(1 - amount, 1 + amount))
    return image
