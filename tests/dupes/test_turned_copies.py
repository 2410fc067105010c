"""The eight orientations: names, composition, and telling a turned copy of a real photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.dupes.orientation import best_transform, thumbnail
from lookalike.search.orientation import (
    TRANSFORMS,
    compose,
    inverse,
    transform_array,
    transform_image,
)


@pytest.mark.parametrize("name", [None, *TRANSFORMS])
def test_image_and_array_transforms_agree_and_invert(name: str | None) -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    turned = np.asarray(transform_image(Image.fromarray(pixels), name))
    assert np.array_equal(turned, transform_array(pixels, name))
    assert np.array_equal(transform_array(turned, inverse(name)), pixels)


def test_names_mean_what_pil_and_numpy_mean() -> None:
    pixels = np.arange(6).reshape(2, 3)
    assert np.array_equal(transform_array(pixels, "rot90"), np.rot90(pixels))
    assert np.array_equal(transform_array(pixels, "flip"), np.fliplr(pixels))
    assert compose("rot90", "rot90") == "rot180" and compose("flip", "flip") is None
    assert compose("rot90", "rot270") is None and inverse("rot90") == "rot270"


@pytest.mark.parametrize("name", TRANSFORMS)
def test_a_turned_copy_of_a_photo_names_its_transform(
    photo_library: Path, tmp_path: Path, name: str
) -> None:
    original = Image.open(photo_library / "coffee.jpg").convert("RGB")
    transform_image(original, name).save(tmp_path / "copy.jpg", quality=80)
    a, b = thumbnail(str(photo_library / "coffee.jpg")), thumbnail(str(tmp_path / "copy.jpg"))
    assert a is not None and b is not None
    assert best_transform(a, b) == name


def test_another_photo_or_an_upright_copy_is_no_transform(photo_library: Path) -> None:
    a, b = (
        thumbnail(str(photo_library / "coffee.jpg")),
        thumbnail(str(photo_library / "rocket.jpg")),
    )
    assert a is not None and b is not None
    assert best_transform(a, b) is None and best_transform(a, a) is None
    assert thumbnail(str(photo_library / "missing.jpg")) is None
