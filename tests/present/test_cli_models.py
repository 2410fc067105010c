"""Every registered kind of model indexes and searches through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lookalike.demo import write_photos
from lookalike.evaluate.edits import apply_edit

PHOTOS = ("astronaut", "chelsea", "coffee", "coins", "rocket", "camera")


def lookalike(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOOKALIKE_CACHE": str(cwd / "cache"), "LOOKALIKE_CONFIG": "/nonexistent"}
    return subprocess.run(
        [sys.executable, "-m", "lookalike.present.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", ["efficientnet_lite0", "seed_cnn"])
def test_index_and_search_json_with_model(model: str, tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "photos", PHOTOS)
    flipped = tmp_path / "chelsea-flipped.jpg"
    with Image.open(photos[1]) as image:
        apply_edit("flip", image).save(flipped, "JPEG", quality=90)
    index = str(tmp_path / "index")

    done = lookalike(
        "index", "--index", index, "--model", model, "-q", str(photos[0].parent), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(lookalike("info", "--index", index, "--json", cwd=tmp_path).stdout)
    assert (info["model"], info["images"]) == (model, len(PHOTOS))
    assert info["dim"] == {"efficientnet_lite0": 1280, "seed_cnn": 128}[model]

    done = lookalike(
        "search", "--index", index, "--json", "-k", "3", str(photos[2]), str(flipped), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    exact, edited = (json.loads(line) for line in done.stdout.splitlines())
    assert exact["query"] == str(photos[2])
    assert exact["results"][0]["path"] == str(photos[2].resolve())
    assert exact["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert len(edited["results"]) == 3
    if model == "efficientnet_lite0":  # a pretrained network finds the flipped cat's original
        assert edited["results"][0]["path"] == str(photos[1].resolve())
