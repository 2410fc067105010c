"""What int8 quantisation is calibrated on, and how: the part of an int8 vector space that is
not the float network.

Static quantisation sets each activation's int8 range from the values it takes on these
images, so other images, another order or other settings give other vectors: the
:attr:`Calibration.tag` goes into the int8 model id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lookalike.embed.preprocess import Preprocess

# scikit-image's bundled photographs (no download). The demo shows the same ones, but this
# list is the calibration's own: changing it changes every int8 vector.
PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)


def _centre_crop(photo: Image.Image) -> Image.Image:
    w, h = photo.size
    return photo.crop((w // 4, h // 4, w - w // 4, h - h // 4))


# Each photo is seen as itself, mirrored and centre-cropped (the middle half of each side).
VIEWS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "photo": lambda photo: photo,
    "mirrored": lambda photo: photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "centre_crop": _centre_crop,
}


@dataclass(frozen=True)
class Calibration:
    """Images (``photos`` x ``views``, photo by photo), batch size, and ONNX Runtime's
    quantisation settings (names of its enums: weights per output channel, QDQ form)."""

    photos: tuple[str, ...] = PHOTOS
    views: tuple[str, ...] = tuple(VIEWS)
    batch_size: int = 16
    quant_format: str = "QDQ"
    per_channel: bool = True
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    calibrate_method: str = "MinMax"

    @property
    def tag(self) -> str:
        """8 hex digits of the SHA-256 of these settings: names the calibration in model ids."""
        spec = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(spec.encode()).hexdigest()[:8]

    def images(self) -> list[Image.Image]:
        """The calibration images, RGB, in order (len(photos) x len(views))."""
        from skimage import data

        images = []
        for name in self.photos:
            photo = Image.fromarray(getattr(data, name)()).convert("RGB")
            images += [VIEWS[view](photo) for view in self.views]
        return images

    def batches(self, preprocess: Preprocess) -> list[np.ndarray]:
        """Network inputs, float32 (batch_size, 3, size, size) each (the last may be smaller)."""
        images = self.images()
        size = self.batch_size
        return [preprocess.batch(images[i : i + size]) for i in range(0, len(images), size)]


CALIBRATION = Calibration()  # the one every int8 model uses
