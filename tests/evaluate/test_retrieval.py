"""Evaluation through a real temporary index, with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lookalike.evaluate.datasets import DatasetError
from lookalike.evaluate.retrieval import copy_detection, evaluate_folder
from lookalike.present.cli import main


def test_evaluate_folder(labelled: Path) -> None:
    evaluation = evaluate_folder(labelled)
    report = evaluation.report
    # Edited copies of one photo find each other before any other photo.
    assert report.map_at_r > 0.9 and report.r_at_1 == 1.0
    assert (report.queries, report.excluded) == (12, 1)  # rocket: R = 0, left out
    assert set(report.per_label) == {"astronaut", "coffee", "cat", "rocket"}
    assert report.per_label["cat"]["images"] == 4
    # The 13 images each rank the 12 others.
    assert evaluation.ranked.shape == (13, 12)
    assert evaluation.relevance[:12, :3].mean() > 0.9
    assert evaluation.n_relevant.tolist() == [3] * 12 + [0]  # labels in sorted order


@pytest.mark.slow
def test_eval_cli_json_and_plot(
    labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "eval.png"
    assert main(["eval", str(labelled), "--json", "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"map_at_r", "r_at_1", "precision_at_10", "map_at_100", "per_label"} <= set(out)
    assert out["map_at_r"] > 0.9
    assert out["per_label"]["rocket"]["map_at_r"] is None  # NaN is not JSON
    with Image.open(plot) as png:
        assert png.format == "PNG" and png.width > 600 and png.height > 600


@pytest.mark.slow
def test_eval_cli_text(labelled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(labelled), "--worst", "2"]) == 0
    out = capsys.readouterr().out
    assert "12 queries (1 left out" in out
    assert "MAP@R" in out and "worst 2 labels:" in out
    assert len([line for line in out.splitlines() if "(4 images)" in line]) == 2


@pytest.mark.slow
def test_copy_detection_cli(photos: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    originals, distractors = photos
    code = main(
        ["eval", "--copy-detection", str(originals), "--distractors", str(distractors), "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["originals"], out["distractors"], out["queries"]) == (4, 2, 4 * 12)
    assert set(out["per_edit"]) >= {"flip", "jpeg_15", "centre_crop", "border", "text_overlay"}
    # Mild edits of distinct photos are found first; 10 hits cover all 6 indexed images.
    for edit in ("flip", "jpeg_15", "downscale_160", "greyscale"):
        assert out["per_edit"][edit]["1"] == 1.0, edit
    assert out["recall_at"]["10"] == 1.0
    assert 0.7 < out["recall_at"]["1"] <= 1.0


def test_copy_detection_subset_and_errors(photos: tuple[Path, Path], tmp_path: Path) -> None:
    originals, _ = photos
    report = copy_detection(originals, edits=["flip", "blur"], ks=(1, 3))
    assert set(report.recall) == {"flip", "blur"} and report.queries == 8
    assert report.recall["flip"][1] == 1.0 and report.overall[3] == 1.0
    with pytest.raises(DatasetError, match="unknown edit"):
        copy_detection(originals, edits=["sepia"])
    with pytest.raises(DatasetError, match="no images"):
        copy_detection(tmp_path)


def test_eval_cli_usage_errors(
    labelled: Path, photos: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval"]) == 1
    assert "either DATASET or --copy-detection" in capsys.readouterr().err
    assert main(["eval", str(labelled), "--distractors", str(photos[1])]) == 1
    assert "--distractors and --orientations go with --copy-detection" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_adapt_learns_from_the_indexed_images_and_keeps_copies_together(
    labelled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(labelled), "--adapt", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["map_at_r"] > 0.9 and out["r_at_1"] == 1.0
    with pytest.raises(SystemExit):  # one thing learned at a time
        main(["eval", str(labelled), "--adapt", "--centre"])
    assert "not allowed with argument" in capsys.readouterr().err
