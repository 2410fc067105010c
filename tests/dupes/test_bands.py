"""Each model's own bands: the same cosine is an edit for one network and not for another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.decode.image import ImageMeta
from lookalike.dupes import THRESHOLDS, band_of, find_duplicates, thresholds_for
from lookalike.store import LocalStore
from lookalike.store.catalogue import Upsert


def pair_at(cosine: float) -> list[np.ndarray]:
    """Two unit vectors ``cosine`` apart and a third unrelated to both."""
    return [
        np.asarray([1.0, 0.0, 0.0, 0.0], np.float32),
        np.asarray([cosine, np.sqrt(1 - cosine**2), 0.0, 0.0], np.float32),
        np.asarray([0.0, 0.0, 0.0, 1.0], np.float32),
    ]


def store_of(directory: Path, model_name: str, vectors: list[np.ndarray]) -> LocalStore:
    store = LocalStore.create(directory, model_name, f"{model_name}-test", 4)
    meta = ImageMeta(width=10, height=10, format="JPEG")
    with store.writing():
        store.write([Upsert(f"/{i}.jpg", 100, 1, v, meta=meta) for i, v in enumerate(vectors)])
    return store


def test_a_pair_is_an_edit_for_the_model_whose_cosines_run_lower(tmp_path: Path) -> None:
    gem = thresholds_for("efficientnet_lite0_gem")
    cosine = (gem["edited"] + THRESHOLDS["edited"]) / 2  # between the two models' edited bands
    found = {}
    for model in ("mobilenet_v2", "efficientnet_lite0_gem"):
        store = store_of(tmp_path / model, model, pair_at(cosine))
        found[model] = [
            ({d.path for d in g.duplicates} | {g.keep.path}, [d.band for d in g.duplicates])
            for g in find_duplicates(store)
        ]
        store.close()
    assert found["mobilenet_v2"] == []
    assert found["efficientnet_lite0_gem"] == [({"/0.jpg", "/1.jpg"}, ["edited"])]


def test_a_model_not_measured_gets_the_default_bands() -> None:
    assert thresholds_for("/home/me/my-trained-model") == THRESHOLDS
    assert thresholds_for("mobilenet_v2") == THRESHOLDS


@pytest.mark.parametrize("model", ["mobilenet_v2", "efficientnet_lite0_gem"])
def test_bands_are_ordered_and_a_turned_copy_is_never_identical(model: str) -> None:
    bands = thresholds_for(model)
    assert 0 < bands["similar"] < bands["edited"] < bands["identical"] < 1
    assert band_of(bands["identical"], None, bands) == "identical"
    assert band_of(bands["identical"], "rot90", bands) == "edited"
    assert band_of(bands["edited"] - 0.01, None, bands) == "similar"
