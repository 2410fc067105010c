"""The score decomposed over feature-map cells, on real photos: it sums to the embedder's own
score for every pooling, head and whitening, and an image's own crop is hottest where it lies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike import Index, LookalikeError
from lookalike.embed.interface import Embedder
from lookalike.embed.model_dir import load_model_dir, save_model_dir
from lookalike.embed.preprocess import Preprocess
from lookalike.embed.registry import create_backbone, create_torch_embedder
from lookalike.embed.retrieval_net import RetrievalNet
from lookalike.explain.network import float_network
from lookalike.explain.similarity import cell_pairs, explain_match
from lookalike.search.filters import Filters
from lookalike.search.region import Box
from lookalike.store.whitening import learn_whitening


@pytest.fixture(scope="module")
def images(photo_library: Path) -> list[Image.Image]:
    return [
        Image.open(photo_library / f"{n}.jpg").convert("RGB")
        for n in ("chelsea", "coffee", "rocket", "astronaut")
    ]


def trained_seed_cnn(folder: Path) -> Embedder:
    """A trained model directory: learned GeM (p = 2.5) and seed_cnn's fully connected head."""
    net = RetrievalNet(create_backbone("seed_cnn"), gem_p=2.5).eval()
    save_model_dir(folder, net, "seed_cnn", Preprocess(128), "")
    return load_model_dir(folder)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda _: create_torch_embedder("mobilenet_v2"), id="mobilenet_v2-gap"),
        pytest.param(lambda _: create_torch_embedder("seed_cnn"), id="seed_cnn-gap-head"),
        pytest.param(lambda _: create_torch_embedder("seed_cnn", pooling="gem"), id="seed_cnn-gem"),
        pytest.param(lambda _: create_torch_embedder("seed_cnn", pooling="mac"), id="seed_cnn-mac"),
        pytest.param(trained_seed_cnn, id="trained-gem-head"),
    ],
)
def test_the_pairs_sum_to_the_embedders_own_score(
    make: object, images: list[Image.Image], tmp_path: Path
) -> None:
    embedder: Embedder = make(tmp_path / "model")  # type: ignore[operator]
    network = float_network(embedder)
    vectors = embedder.embed(images)
    final = network.maps(images, indices=[]).final
    for q, r in [(0, 1), (0, 2), (1, 3)]:
        pairs = cell_pairs(network, final[q], final[r])
        cells = final.shape[2] * final.shape[3]
        assert pairs.shape == (cells, cells)
        assert float(pairs.sum()) == pytest.approx(float(vectors[q] @ vectors[r]), abs=1e-5)
    # and in the space of a PCA-whitening learned from these vectors: exact too, but it
    # scales float32 rounding up by 1/sqrt of its weakest eigenvalues (4 vectors here)
    whitening = learn_whitening(vectors)
    whitened = whitening.apply(vectors)
    pairs = cell_pairs(network, final[0], final[2], whitening)
    assert float(pairs.sum()) == pytest.approx(float(whitened[0] @ whitened[2]), abs=1e-3)


def inside(cells: np.ndarray, box: Box, margin: float = 0.0) -> np.ndarray:
    """Which cells have their centre inside ``box`` grown by ``margin`` on each side (cells
    in original pixels)."""
    x = (cells[..., 0] + cells[..., 2]) / 2
    y = (cells[..., 1] + cells[..., 3]) / 2
    return (
        (x >= box.x - margin)
        & (x <= box.x + box.w + margin)
        & (y >= box.y - margin)
        & (y <= box.y + box.h + margin)
    )


@pytest.mark.parametrize(
    ("name", "box"),
    [("astronaut", Box(307, 0, 204, 204)), ("camera", Box(307, 307, 204, 204))],
)
def test_an_image_explained_against_its_own_crop_is_hottest_inside_it(
    built_index: Path, photo_library: Path, name: str, box: Box
) -> None:
    photo = photo_library / f"{name}.jpg"
    with Index.open(built_index) as index:
        explained = explain_match(index, photo, photo, region=box)
        (hit,) = index.search(
            photo.as_posix(), k=1, filters=Filters(ids=frozenset({explained.result.image_id or 0}))
        )
    heat = explained.result.heat
    hot = inside(explained.result.cells, box)
    # the hottest cell is in the region or next to it (GeM pooling lets one strong feature
    # just outside, the cameraman's coat, outweigh the others)
    cell = float(explained.result.cells[0, 0, 2] - explained.result.cells[0, 0, 0])
    assert inside(explained.result.cells, box, cell)[np.unravel_index(heat.argmax(), heat.shape)]
    assert heat[hot].mean() > 1.3 * heat[~hot].mean()
    # the query's cells lie in the region, its heat sums to the same total as the result's
    assert inside(explained.query.cells, box).all()
    assert float(explained.query.heat.sum()) == pytest.approx(explained.total, abs=1e-5)
    assert float(explained.result.heat.sum()) == pytest.approx(explained.total, abs=1e-5)
    # the index's own score for a region query (int8), and the float maps' sum beside it
    assert explained.score < hit.score == pytest.approx(1.0)
    assert explained.total == pytest.approx(explained.score, abs=0.06)
    assert any("int8" in note for note in explained.notes)


def test_the_maps_geometry_is_the_images(built_index: Path, photo_library: Path) -> None:
    """chelsea is 451 x 300: letterboxed into 224 x 224, its 7 x 7 cells span its width and
    stick out above and below by the same padding."""
    with Index.open(built_index) as index:
        explained = explain_match(
            index, photo_library / "chelsea.jpg", photo_library / "coffee.jpg"
        )
        by_id = explain_match(index, explained.result.image_id or 0, photo_library / "chelsea.jpg")
    side = explained.query
    assert (side.width, side.height) == (451, 300) and side.heat.shape == (7, 7)
    cells = side.cells
    assert cells[0, 0, 0] == pytest.approx(0, abs=0.5) and cells[0, -1, 2] == pytest.approx(
        451, abs=0.5
    )
    # resized to 224 x 149 and padded by 37 rows above and 38 below; 149 rows per 300 pixels
    assert cells[0, 0, 1] == pytest.approx(-37 * 300 / 149, abs=0.1)
    assert cells[-1, 0, 3] == pytest.approx((224 - 37) * 300 / 149, abs=0.1)
    assert np.allclose(np.diff(cells[0, :, 0]), 451 / 7, atol=0.5)  # equal widths
    assert by_id.query.label.endswith("coffee.jpg") and by_id.query.image_id is not None
    assert by_id.result.heat.shape == (7, 7)
    data = explained.as_dict(pairs=3)
    assert [len(data["pairs"]), data["query"]["grid"]] == [3, [7, 7]]  # type: ignore[arg-type,index]


def test_what_cannot_be_explained_is_one_clear_error(
    built_index: Path, photo_library: Path, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.jpg"
    Image.open(photo_library / "moon.jpg").save(stranger)
    with Index.open(built_index) as index:
        with pytest.raises(LookalikeError, match="is not in the index"):
            explain_match(index, photo_library / "moon.jpg", stranger)
        with pytest.raises(LookalikeError, match="no indexed image with id 9999"):
            explain_match(index, 9999, photo_library / "moon.jpg")
        explained = explain_match(index, stranger, photo_library / "moon.jpg")  # a query file
    assert explained.query.image_id is None and explained.score > 0.9  # re-saved at quality 75
