from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from skimage import data

from lookalike.evaluate.datasets import DatasetError, load_labelled_folder


def test_load_labelled_folder(tmp_path: Path) -> None:
    photo = Image.fromarray(data.astronaut()).resize((32, 32))
    for label, names in {"dogs": ["b.jpg", "a.png"], "cats": ["c.webp"]}.items():
        (tmp_path / label).mkdir()
        for name in names:
            photo.save(tmp_path / label / name)
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    photo.save(tmp_path / ".hidden" / "x.png")
    photo.save(tmp_path / "top.png")  # no label folder: ignored

    items = load_labelled_folder(tmp_path)
    assert [(p.relative_to(tmp_path).as_posix(), label) for p, label in items] == [
        ("cats/c.webp", "cats"),
        ("dogs/a.png", "dogs"),
        ("dogs/b.jpg", "dogs"),
    ]


def test_load_labelled_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        load_labelled_folder(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no images"):
        load_labelled_folder(tmp_path)
