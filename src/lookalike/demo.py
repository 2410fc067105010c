"""The embedded demo: real photographs that ship with scikit-image, and edited copies as queries."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from lookalike.evaluate.edits import apply_edit

# scikit-image's bundled photographs (its data module, no download needed).
PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)

# (photo, edit) pairs the demo searches with: each should find its original first.
QUERIES = (
    ("chelsea", "centre_crop"),
    ("astronaut", "flip"),
    ("coffee", "rotate_10"),
    ("rocket", "greyscale"),
    ("coins", "jpeg_15"),
    ("retina", "text_overlay"),
)


def write_photos(folder: Path, names: tuple[str, ...] = PHOTOS) -> list[Path]:
    """Write the bundled photographs as JPEG files (skipped when already there)."""
    from skimage import data  # imported here: only the demo and tests need scikit-image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / f"{name}.jpg"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            Image.fromarray(getattr(data, name)()).convert("RGB").save(tmp, "JPEG", quality=92)
            tmp.replace(path)
        paths.append(path)
    return paths


def write_queries(photos: Path, folder: Path) -> list[tuple[Path, Path]]:
    """Write the edited copies; returns (query, original) pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for name, edit in QUERIES:
        original = photos / f"{name}.jpg"
        query = folder / f"{name}-{edit}.jpg"
        if not query.exists():
            with Image.open(original) as image:
                apply_edit(edit, image).save(query, "JPEG", quality=90)
        pairs.append((query, original))
    return pairs
