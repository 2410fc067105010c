"""The int8 calibration: its own photos and settings, named by a tag that follows each."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from lookalike.embed.calibration import CALIBRATION, PHOTOS, Calibration
from lookalike.embed.preprocess import Preprocess


def test_each_photo_then_its_mirror_then_its_centre() -> None:
    images = CALIBRATION.images()
    assert len(images) == 3 * len(PHOTOS) == 48
    photo, mirrored, crop = images[:3]
    assert mirrored.tobytes() == photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).tobytes()
    w, h = photo.size
    assert crop.size == (w - 2 * (w // 4), h - 2 * (h // 4))
    assert crop.tobytes() == photo.crop((w // 4, h // 4, w - w // 4, h - h // 4)).tobytes()
    batches = CALIBRATION.batches(Preprocess(64))
    assert [b.shape for b in batches] == [(16, 3, 64, 64)] * 3
    np.testing.assert_array_equal(batches[0][:3], Preprocess(64).batch(images[:3]))


def test_the_tag_follows_everything_that_changes_the_vectors() -> None:
    changes = [
        {"photos": PHOTOS[::-1]},  # the same photos in another order
        {"photos": PHOTOS[:-1]},
        {"views": ("photo", "mirrored")},
        {"batch_size": 8},
        {"per_channel": False},
        {"activation_type": "QInt8"},
        {"calibrate_method": "Entropy"},
    ]
    tags = {dataclasses.replace(CALIBRATION, **change).tag for change in changes}  # type: ignore[arg-type]
    assert len(tags) == len(changes) and CALIBRATION.tag not in tags
    assert Calibration().tag == CALIBRATION.tag and len(CALIBRATION.tag) == 8
