"""``lookalike explain``, ``layers`` and ``course`` through the real command."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from lookalike import Index

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def test_explain_prints_json_and_draws(
    run_cli: RunCli, built_index: Path, photo_library: Path, tmp_path: Path
) -> None:
    picture = tmp_path / "why.png"
    query, result = photo_library / "chelsea.jpg", photo_library / "coffee.jpg"
    out = run_cli(
        "explain",
        str(query),
        str(result),
        "--index",
        str(built_index),
        "--json",
        "-o",
        str(picture),
        "--pairs",
        "4",
        check=True,
    )
    explained = json.loads(out.stdout)
    with Index.open(built_index) as index:
        scores = {h.path: h.score for h in index.search(query, k=8)}
    assert explained["score"] == round(scores[str(result)], 6)  # the index's own score
    assert abs(sum(map(sum, explained["result"]["heat"])) - explained["total"]) < 1e-4
    assert explained["query"]["grid"] == [7, 7] and len(explained["pairs"]) == 4
    assert any("int8" in note for note in explained["notes"])
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width > 800


def test_explain_by_id_and_its_errors(run_cli: RunCli, built_index: Path) -> None:
    text = run_cli("explain", "1", "2", "--index", str(built_index), check=True).stdout
    assert text.startswith("score ") and "strongest cell pairs" in text and "(id 2)" in text
    missing = run_cli("explain", "1", "nowhere.jpg", "--index", str(built_index))
    assert missing.returncode == 1
    assert (
        missing.stderr.startswith("lookalike: error: ") and "is not in the index" in missing.stderr
    )


def test_layers_prints_the_shapes_and_draws(
    run_cli: RunCli, photo_library: Path, tmp_path: Path
) -> None:
    picture = tmp_path / "layers.png"
    out = run_cli(
        "layers",
        str(photo_library / "coins.jpg"),
        "--model",
        "seed_cnn",
        "-o",
        str(picture),
        check=True,
    ).stdout
    assert "input 3 x 128 x 128" in out
    assert "first convolution: 32 filters of 3 x 3 x 3, stride 1" in out
    assert "features.1 MaxPool: 32 x 64 x 64 (stride 2)" in out
    assert "features.7 MaxPool: 256 x 8 x 8 (stride 16)" in out
    with Image.open(picture) as image:
        assert image.format == "PNG"


def test_course_prints_the_worked_numbers_and_draws_them(run_cli: RunCli, tmp_path: Path) -> None:
    out = run_cli("course", "-o", str(tmp_path / "course"), check=True).stdout
    assert "= 4\n" in out and "= 139\n" in out and "[[6, 8], [3, 4]]" in out
    assert "L = 1/n sum (y_hat - y)^2 = 0.0425" in out and "autograd agrees" in out
    drawn = sorted(p.name for p in (tmp_path / "course").iterdir())
    assert drawn == [
        "1-convolution.png",
        "2-padding.png",
        "3-pooling.png",
        "4-depth.png",
        "5-training.png",
    ]
