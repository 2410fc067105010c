"""A real photo collection with real copies in it: re-encoded, halved, turned and mirrored."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from lookalike import Index

# (original, copy file name, how the copy was made)
COPIES = (
    ("coffee", "coffee-q70.jpg", "reencode"),
    ("coffee", "coffee-half.jpg", "half"),
    ("coffee", "coffee-rot90.jpg", "rot90"),
    ("rocket", "rocket-q70.jpg", "reencode"),
    ("rocket", "rocket-flip.jpg", "flip"),
    ("chelsea", "chelsea-half.jpg", "half"),
)


def write_copies(originals: Path, folder: Path) -> None:
    folder.mkdir(parents=True)
    for name, copy, how in COPIES:
        image = Image.open(originals / f"{name}.jpg").convert("RGB")
        if how == "half":
            image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
        elif how == "rot90":
            image = image.transpose(Image.Transpose.ROTATE_90)
        elif how == "flip":
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image.save(folder / copy, quality=70 if how == "reencode" else 90)


def make_collection(photo_library: Path, root: Path) -> Path:
    """``root``/originals (the session's photos) and ``root``/copies/<copies of three>."""
    shutil.copytree(photo_library, root / "originals")
    write_copies(root / "originals", root / "copies")
    return root


@pytest.fixture(scope="session")
def collection(photo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only: eight real photos and six copies of three of them."""
    return make_collection(photo_library, tmp_path_factory.mktemp("dupes") / "collection")


@pytest.fixture(scope="session")
def collection_index(collection: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of ``collection``, built once; tests must not write to it."""
    directory = tmp_path_factory.mktemp("dupes-index") / "index"
    with Index.create(directory) as index:
        index.add([collection])
    return directory


@pytest.fixture
def own_collection(photo_library: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(a private collection, its own index) for tests that move files or write verdicts."""
    root = make_collection(photo_library, tmp_path / "collection")
    with Index.create(tmp_path / "index") as index:
        index.add([root])
    return root, tmp_path / "index"
