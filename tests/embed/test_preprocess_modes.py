"""Preprocessing modes on a real wide photo with a red stripe at its left edge."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from lookalike.embed.preprocess import Preprocess


@pytest.fixture(scope="module")
def wide() -> Image.Image:
    pixels = data.coffee().copy()  # 400 x 600
    pixels[:, :30] = (255, 0, 0)
    return Image.fromarray(pixels)


def red_share(preprocess: Preprocess, image: Image.Image) -> float:
    """Fraction of the output's pixels that are the stripe's red."""
    batch = preprocess.batch([image])[0]
    mean, std = np.array(preprocess.mean), np.array(preprocess.std)
    rgb = batch.transpose(1, 2, 0) * std + mean
    return float((np.abs(rgb - (1, 0, 0)).max(axis=2) < 0.1).mean())


def test_ids_differ_per_mode() -> None:
    ids = {Preprocess(mode=mode).id for mode in ("letterbox", "crop", "squash")}
    assert ids == {"letterbox224", "crop224", "squash224"}
    with pytest.raises(ValueError, match="unknown preprocessing"):
        Preprocess(mode="stretch")


def test_letterbox_pads_and_keeps_edges(wide: Image.Image) -> None:
    batch = Preprocess(mode="letterbox").batch([wide])
    assert batch.shape == (1, 3, 224, 224)
    # 600x400 -> 224x149: 37 rows of zero padding above.
    assert np.all(batch[0, :, :37] == 0) and np.any(batch[0, :, 40] != 0)
    assert red_share(Preprocess(mode="letterbox"), wide) > 0.02


def test_crop_fills_the_square_and_loses_the_edges(wide: Image.Image) -> None:
    batch = Preprocess(mode="crop").batch([wide])
    assert np.all(np.abs(batch[0]).sum(axis=0) > 0)  # no padding anywhere
    assert red_share(Preprocess(mode="crop"), wide) == 0.0
    # Shorter side 400 -> 224: the square comes from the middle 400 x 400 of the photo.
    expected = wide.crop((100, 0, 500, 400)).resize((224, 224), Image.Resampling.BILINEAR)
    diff = np.abs(
        np.asarray(Preprocess(mode="crop").fit(wide), dtype=np.float32)
        - np.asarray(expected, dtype=np.float32)
    )
    assert diff.mean() < 3.0


def test_squash_keeps_everything_without_padding(wide: Image.Image) -> None:
    preprocess = Preprocess(mode="squash")
    assert preprocess.fit(wide).size == (224, 224)
    assert red_share(preprocess, wide) > 0.03  # the stripe is widened by 600 -> 224 squash
    assert preprocess.decode_side == 448 and Preprocess().decode_side == 224
