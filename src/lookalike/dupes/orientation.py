"""The eight ways a picture can be turned or mirrored (the dihedral group), and how to tell
which one makes two pictures line up.

A transform is named by what it does to the original to give the copy: ``rot90`` turns it
90 degrees anticlockwise (as PIL's ``Transpose.ROTATE_90`` and ``numpy.rot90``), ``flip``
mirrors it left to right, ``flip_rot90`` mirrors then turns. ``None`` is the picture as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from lookalike.decode.image import decode_image
from lookalike.errors import ImageError

TRANSFORMS: tuple[str, ...] = (
    "rot90",
    "rot180",
    "rot270",
    "flip",
    "flip_rot90",
    "flip_rot180",
    "flip_rot270",
)
THUMB_SIDE = 32  # pixels of the grey thumbnail that orientation is judged on


def _parts(name: str | None) -> tuple[bool, int]:
    """(mirrored first, quarter turns anticlockwise)."""
    if name is None:
        return False, 0
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}")
    flipped = name.startswith("flip")
    turn = name.removeprefix("flip").removeprefix("_")
    return flipped, int(turn.removeprefix("rot")) // 90 if turn else 0


def transform_array(array: np.ndarray, name: str | None) -> np.ndarray:
    """``array`` (H, W[, C]) turned or mirrored as ``name`` says."""
    flipped, turns = _parts(name)
    out = np.fliplr(array) if flipped else array
    return np.rot90(out, turns)


def transform_image(image: Image.Image, name: str | None) -> Image.Image:
    """``image`` turned or mirrored as ``name`` says (lossless)."""
    flipped, turns = _parts(name)
    out = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flipped else image
    rotations = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180}
    if turns == 3:
        return out.transpose(Image.Transpose.ROTATE_270)
    return out.transpose(rotations[turns]) if turns else out


# Each transform as what it does to a small array of distinct numbers: composing and
# inverting transforms is then looking the result up.
_PROBE = np.arange(6).reshape(2, 3)
_BY_RESULT = {
    transform_array(_PROBE, t).tobytes() + bytes(transform_array(_PROBE, t).shape): t
    for t in (None, *TRANSFORMS)
}


def _lookup(array: np.ndarray) -> str | None:
    return _BY_RESULT[np.ascontiguousarray(array).tobytes() + bytes(array.shape)]


def compose(first: str | None, then: str | None) -> str | None:
    """The one transform that does ``first`` and then ``then``."""
    return _lookup(transform_array(transform_array(_PROBE, first), then))


def inverse(name: str | None) -> str | None:
    """The transform that undoes ``name``."""
    return next(t for t in (None, *TRANSFORMS) if compose(name, t) is None)


def thumbnail(path: str) -> np.ndarray | None:
    """The file as a zero-mean, unit-norm grey float32 (THUMB_SIDE, THUMB_SIDE) picture
    (squashed to a square, which turns and mirrors commute with), or None if it cannot be
    read. JPEGs decode at a reduced scale, so this costs a few milliseconds."""
    try:
        image = decode_image(path, max_side=2 * THUMB_SIDE).image
    except ImageError:  # a file that changed or vanished since indexing
        return None
    grey = image.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)
    pixels = np.asarray(grey, dtype=np.float32)
    pixels -= pixels.mean()
    norm = float(np.linalg.norm(pixels))
    return pixels / norm if norm > 0 else None


def alignment(original: np.ndarray, copy: np.ndarray) -> dict[str | None, float]:
    """Correlation of ``copy`` with each transform of ``original`` (thumbnails)."""
    return {t: float((transform_array(original, t) * copy).sum()) for t in (None, *TRANSFORMS)}


# A copy is taken for turned or mirrored when that transform lines the thumbnails up this
# well, and clearly better than leaving them as they are (measured: an exact copy, re-encoded,
# lines up above 0.97; unrelated photos stay below 0.8).
ALIGNED = 0.90
MARGIN = 0.10


def best_transform(original: np.ndarray, copy: np.ndarray) -> str | None:
    """The transform that turns ``original`` into ``copy``, or None if none clearly does."""
    scores = alignment(original, copy)
    best = max(TRANSFORMS, key=lambda t: scores[t])
    if scores[best] >= ALIGNED and scores[best] - scores[None] >= MARGIN:
        return best
    return None


def all_orientations(image: Image.Image) -> Sequence[tuple[str | None, Image.Image]]:
    """The image in each of its eight orientations, as it is first."""
    return [(t, transform_image(image, t)) for t in (None, *TRANSFORMS)]
