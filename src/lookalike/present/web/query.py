"""What a web search asks for beyond the image: filters on the results and a region to crop."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

from PIL import Image

from lookalike.decode.image import decode_image
from lookalike.errors import LookalikeError
from lookalike.files.walk import is_under
from lookalike.store import ImageRecord

# Regions are cut from the image decoded at most this large (fast for big JPEGs), then
# embedded; the network sees far fewer pixels than this anyway.
REGION_DECODE_SIDE = 1024
MIN_REGION_SIDE = 8  # pixels of the original: smaller boxes hold nothing to search with


@dataclass(frozen=True)
class Filters:
    """Conditions a result must meet; dates compare the EXIF capture day (inclusive)."""

    folder: str | None = None  # absolute folder: results under it only
    taken_after: date | None = None
    taken_before: date | None = None
    min_width: int = 0
    min_height: int = 0

    @property
    def active(self) -> bool:
        return bool(
            self.folder
            or self.taken_after
            or self.taken_before
            or self.min_width
            or self.min_height
        )

    def accepts(self, record: ImageRecord) -> bool:
        if self.folder and not is_under(record.path, [os.path.abspath(self.folder)]):
            return False
        if (record.width or 0) < self.min_width or (record.height or 0) < self.min_height:
            return False
        if self.taken_after or self.taken_before:
            if not record.taken_at:  # no capture date: cannot be shown to be in the range
                return False
            day = record.taken_at[:10]
            if self.taken_after and day < self.taken_after.isoformat():
                return False
            if self.taken_before and day > self.taken_before.isoformat():
                return False
        return True


@dataclass(frozen=True)
class Box:
    """A region of an image in its original pixels, after EXIF orientation."""

    x: int
    y: int
    w: int
    h: int


def crop_region(source: str | bytes, box: Box) -> Image.Image:
    """The RGB pixels of ``box`` in an image file or encoded bytes.

    Raises :class:`LookalikeError` when the box is not inside the image or is too small,
    :class:`lookalike.errors.ImageError` when the source cannot be decoded.
    """
    decoded = decode_image(source, max_side=REGION_DECODE_SIDE)
    width, height = decoded.width, decoded.height
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
