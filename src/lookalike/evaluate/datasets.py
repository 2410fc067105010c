"""Labelled image folders for evaluation: ``DATASET/<label>/<image>``, the folder is the label."""

from __future__ import annotations

from pathlib import Path

from lookalike.errors import LookalikeError
from lookalike.files.walk import is_image_name


class DatasetError(LookalikeError):
    """A labelled folder that is missing, empty or not laid out as DATASET/<label>/<image>."""


def load_labelled_folder(root: Path | str) -> list[tuple[Path, str]]:
    """(image path, label) for every image one folder below ``root``, sorted by label then
    name. Hidden files and folders are skipped; files directly in ``root`` are ignored."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder of <label>/<image> files")
    items = [
        (path, label.name)
        for label in sorted(root.iterdir())
        if label.is_dir() and not label.name.startswith(".")
        for path in sorted(label.iterdir())
        if path.is_file() and not path.name.startswith(".") and is_image_name(path.name)
    ]
    if not items:
        raise DatasetError(f"{root} holds no images in <label>/ sub-folders")
    return items
