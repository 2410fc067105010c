"""Search in eight orientations: turned and mirrored copies of real photos are found and named."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from lookalike import Index
from lookalike.search.orientation import TRANSFORMS, centre_view, transform_image
from lookalike.search.query import TextQuery


@pytest.fixture(scope="module")
def turned_queries(photo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("turned")
    original = Image.open(photo_library / "chelsea.jpg").convert("RGB")
    for name in TRANSFORMS:
        transform_image(original, name).save(folder / f"{name}.jpg", quality=85)
    return folder


def test_each_turned_copy_finds_its_original_and_the_transform(
    built_index: Path, photo_library: Path, turned_queries: Path
) -> None:
    with Index.open(built_index) as index:
        queries = [str(turned_queries / f"{name}.jpg") for name in TRANSFORMS]
        results = index.search_many(queries, k=3, orientations=True)
        plain = index.search_many(queries, k=3)
    for name, result, before in zip(TRANSFORMS, results, plain, strict=True):
        best = result.hits[0]
        assert best.path == str(photo_library / "chelsea.jpg"), name
        if name == "flip" and best.transform is None:
            # The network is nearly mirror-invariant (0.96 as it is): within the margin a
            # turned orientation must beat the upright one by, the mirror may stay unnamed.
            assert best.score > 0.95
            continue
        assert best.transform == name and best.score > 0.95
        assert best.score > before.hits[0].score  # as it is, the turned copy scores less
        assert all(h.transform is None for h in before.hits)


def test_the_cli_adds_transform_to_each_json_result_only_when_asked(
    built_index: Path,
    turned_queries: Path,
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    query = str(turned_queries / "rot270.jpg")
    turned = run_cli(
        "search", query, "--index", str(built_index), "--json", "--orientations", check=True
    )
    first = json.loads(turned.stdout)["results"][0]
    assert first["transform"] == "rot270" and Path(first["path"]).name == "chelsea.jpg"
    plain = run_cli("search", query, "--index", str(built_index), "--json", check=True)
    assert "transform" not in json.loads(plain.stdout)["results"][0]
    with Index.open(built_index) as index:
        (words,) = index.search_many([TextQuery("cat")], orientations=True)
    assert words.error == "orientations apply to image queries, not to words"


def test_a_framed_copy_is_found_by_its_centre(built_index: Path, photo_library: Path) -> None:
    original = Image.open(photo_library / "chelsea.jpg").convert("RGB")
    framed = ImageOps.expand(original, border=max(original.size) // 12, fill=(255, 255, 255))
    assert centre_view(framed).size == (round(framed.width * 0.8), round(framed.height * 0.8))
    with Index.open(built_index) as index:
        (oriented,) = index.search_many([framed], k=3, orientations=True)
        (plain,) = index.search_many([framed], k=3, rerank=False)
    best = oriented.hits[0]
    assert best.path == str(photo_library / "chelsea.jpg") and best.transform is None
    as_it_is = next(h.score for h in plain.hits if h.path == best.path)
    assert best.score > as_it_is  # the centre, without the frame, matches better
