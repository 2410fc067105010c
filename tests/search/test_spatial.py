"""Spatial verification on real photos: an edited copy keeps many inliers, another photo few,
and re-ranking lifts the verified hit over a near-tie while an index keeps its features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data

from lookalike import Index
from lookalike.embed.local_features import LocalFeatures
from lookalike.embed.registry import create_embedder
from lookalike.search.spatial import inliers, rerank


@pytest.fixture(scope="module")
def features() -> dict[str, LocalFeatures]:
    embedder = create_embedder("mobilenet_v2", runtime="torch")
    chelsea = Image.fromarray(data.chelsea())
    w, h = chelsea.size
    images = {
        "chelsea": chelsea,
        "crop": chelsea.crop((w // 8, h // 8, w - w // 8, h - h // 8)),  # zoomed in by 4/3
        "mirror": ImageOps.mirror(chelsea),
        "coffee": Image.fromarray(data.coffee()),
        "astronaut": Image.fromarray(data.astronaut()),
    }
    _, _, local = embedder.embed_with_local_features(list(images.values()))  # type: ignore[attr-defined]
    return dict(zip(images, local, strict=True))


def test_a_crop_keeps_many_inliers_and_other_photos_few(features: dict[str, LocalFeatures]) -> None:
    counts = inliers(
        features["chelsea"],
        [features["chelsea"], features["crop"], features["coffee"], features["astronaut"], None],
    )
    assert counts.dtype == np.int64 and counts.shape == (5,)
    itself, crop, coffee, astronaut, missing = counts.tolist()
    assert itself >= 90  # of 100 cells: every match fits the identity
    assert crop > 2 * max(coffee, astronaut) and crop >= 15
    assert missing == 0


def test_rerank_breaks_a_near_tie_for_the_verified_hit(features: dict[str, LocalFeatures]) -> None:
    order = rerank(
        np.array([0.80, 0.79, 0.50]),
        features["chelsea"],
        [features["coffee"], features["crop"], None],
    )
    assert order.tolist() == [1, 0, 2]
    far = rerank(
        np.array([0.95, 0.40]), features["chelsea"], [features["coffee"], features["crop"]]
    )
    assert far.tolist() == [0, 1]  # verification does not overturn a clear global ranking


def test_an_index_stores_local_features_and_reranks_with_them(
    built_index: Path, photo_library: Path
) -> None:
    with Index.open(built_index) as index:
        records = list(index.records())
        stored = index.store.local_features([r.id for r in records])
        assert set(stored) == {r.id for r in records}
        assert {f.descriptors.shape for f in stored.values()} == {
            (100, 112)
        }  # lite0: 112 channels at 14 x 14
        query = Image.open(photo_library / "chelsea.jpg").convert("RGB")
        w, h = query.size
        crop = np.asarray(query.crop((w // 8, h // 8, w - w // 8, h - h // 8)))
        plain = index.search_many([crop], 8, rerank=False)[0].hits
        verified = index.search_many([crop], 8)[0].hits
        assert verified[0].path.endswith("chelsea.jpg")
        assert sorted(h.id for h in plain) == sorted(h.id for h in verified)
        assert [h.score for h in verified] == [
            {p.id: p.score for p in plain}[h.id] for h in verified
        ]  # scores stay cosine similarities
