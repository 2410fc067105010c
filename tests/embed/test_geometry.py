"""Preprocess.geometry maps cells of a feature map back to the pixels of the image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from lookalike.embed.preprocess import MODES, Preprocess


def centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def test_letterbox_padding_maps_outside_the_image() -> None:
    geometry = Preprocess(224).geometry(400, 200)
    assert (geometry.resized, geometry.offset_x, geometry.offset_y) == ((224, 112), 0, 56)
    top_row = [geometry.cell_box(0, col, 7, 7) for col in range(7)]
    bottom_row = [geometry.cell_box(6, col, 7, 7) for col in range(7)]
    assert all(bottom <= 0 for _, _, _, bottom in top_row)  # wholly in the top padding
    assert all(top >= 200 for _, top, _, _ in bottom_row)  # and in the bottom padding
    assert centre(geometry.cell_box(3, 3, 7, 7)) == pytest.approx((200, 100))
    assert geometry.cell_box(0, 0, 7, 7)[:3] == pytest.approx((0, -100, 400 / 7))


def test_crop_keeps_the_middle_square() -> None:
    geometry = Preprocess(224, mode="crop").geometry(400, 200)
    assert (geometry.resized, geometry.offset_x, geometry.offset_y) == ((448, 224), -112, 0)
    assert geometry.cell_box(0, 0, 7, 7) == pytest.approx((100, 0, 100 + 200 / 7, 200 / 7))
    assert geometry.cell_box(6, 6, 7, 7)[2:] == pytest.approx((300, 200))  # right edges cut
    assert centre(geometry.cell_box(3, 3, 7, 7)) == pytest.approx((200, 100))


def test_squash_scales_each_axis() -> None:
    geometry = Preprocess(224, mode="squash").geometry(400, 200)
    assert (geometry.scale_x, geometry.scale_y) == (0.56, 1.12)
    assert geometry.cell_box(6, 6, 7, 7) == pytest.approx((400 * 6 / 7, 200 * 6 / 7, 400, 200))
    with pytest.raises(ValueError, match="outside a 7x7 map"):
        geometry.cell_box(7, 0, 7, 7)


@pytest.mark.parametrize("mode", MODES)
def test_the_pixels_are_where_the_geometry_says(mode: str) -> None:
    """Each real photo's pixels fill exactly the input rectangle its geometry gives."""
    preprocess = Preprocess(128, mode=mode)
    photos = [Image.fromarray(data.chelsea()), Image.fromarray(data.text())]
    photos.append(photos[0].rotate(90, expand=True))  # a tall one
    for photo, batch in zip(photos, preprocess.batch(photos), strict=True):
        g = preprocess.geometry(*photo.size)
        left, top = max(g.offset_x, 0), max(g.offset_y, 0)
        right, bottom = min(g.offset_x + g.resized[0], 128), min(g.offset_y + g.resized[1], 128)
        inside = np.zeros((128, 128), dtype=bool)
        inside[top:bottom, left:right] = True
        assert (batch[:, ~inside] == 0).all()  # padding: the mean colour, zero once normalised
        assert (np.abs(batch[:, inside]).sum(axis=0) > 0).mean() > 0.99  # the photo
        (x0, y0), (x1, y1) = g.to_image(left, top), g.to_image(right, bottom)
        w, h = photo.size
        if mode == "crop":  # the middle of the longer side, all of the shorter one
            assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((w / 2, h / 2), abs=1)
            assert min(x1 - x0, y1 - y0) == pytest.approx(min(w, h), abs=1)
        else:  # the whole photo
            assert (x0, y0, x1, y1) == pytest.approx((0, 0, w, h))
