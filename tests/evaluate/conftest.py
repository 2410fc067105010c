"""Small labelled folders made from scikit-image's bundled photos and our edits."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from skimage import data

from lookalike.evaluate.edits import apply_edit

PHOTOS = {"astronaut": data.astronaut, "coffee": data.coffee, "cat": data.chelsea}
EDITS = ("flip", "downscale_160", "brightness_contrast", "jpeg_15")


def photo(name: str) -> Image.Image:
    image = Image.fromarray(
        getattr(data, name)() if name in ("rocket", "camera") else PHOTOS[name]()
    )
    return image.convert("RGB")


@pytest.fixture(scope="session")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 labels x 4 edited copies of one photo each, and a label with a single image."""
    root = tmp_path_factory.mktemp("labelled")
    for name in PHOTOS:
        (root / name).mkdir()
        for edit in EDITS:
            apply_edit(edit, photo(name)).save(root / name / f"{edit}.png")
    (root / "rocket").mkdir()
    photo("rocket").resize((200, 300)).save(root / "rocket" / "only.jpg")
    return root


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """4 photos for copy detection, and a distractor folder of 2 other images."""
    root = tmp_path_factory.mktemp("copies")
    originals, distractors = root / "photos", root / "distractors"
    originals.mkdir()
    distractors.mkdir()
    for name in (*PHOTOS, "rocket"):
        photo(name).save(originals / f"{name}.jpg", quality=92)
    photo("camera").save(distractors / "camera.png")
    photo("astronaut").rotate(180).resize((300, 300)).save(distractors / "upside_down.jpg")
    return originals, distractors
