"""Searching for a region of an image: the box, and the pixels it cuts out."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from lookalike.decode.image import decode_image
from lookalike.errors import LookalikeError

# Regions are cut from the image decoded at most this large (fast for big JPEGs), then
# embedded; the network sees far fewer pixels than this anyway.
REGION_DECODE_SIDE = 1024
MIN_REGION_SIDE = 8  # pixels of the original: smaller boxes hold nothing to search with


@dataclass(frozen=True)
class Box:
    """A region of an image in its original pixels, after EXIF orientation."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> Box:
        """``"x,y,w,h"`` -> Box; raises LookalikeError for anything else."""
        parts = text.split(",")
        try:
            x, y, w, h = (int(p) for p in parts)
        except ValueError:
            raise LookalikeError(f"a region is x,y,w,h in whole pixels, not {text!r}") from None
        if min(x, y) < 0:
            raise LookalikeError(f"a region starts inside the image, not at {x},{y}")
        return cls(x, y, w, h)


def crop_region(source: str | bytes, box: Box) -> Image.Image:
    """The RGB pixels of ``box`` in an image file or encoded bytes.

    Raises :class:`LookalikeError` when the box is not inside the image or is too small,
    :class:`lookalike.errors.ImageError` when the source cannot be decoded.
    """
    decoded = decode_image(source, max_side=REGION_DECODE_SIDE)
    width, height = decoded.meta.width or 0, decoded.meta.height or 0
    if min(box.w, box.h) < MIN_REGION_SIDE:
        raise LookalikeError(f"region is too small: at least {MIN_REGION_SIDE}x{MIN_REGION_SIDE}")
    if box.x < 0 or box.y < 0 or box.x + box.w > width or box.y + box.h > height:
        raise LookalikeError(
            f"region {box.x},{box.y} {box.w}x{box.h} is not inside the {width}x{height} image"
        )
    scale = decoded.image.width / width  # the decoded image may be a downscaled copy
    return decoded.image.crop(
        (
            round(box.x * scale),
            round(box.y * scale),
            max(round((box.x + box.w) * scale), round(box.x * scale) + 1),
            max(round((box.y + box.h) * scale), round(box.y * scale) + 1),
        )
    )
