"""Build a folder of thousands of real photographs from Debian packages: copy-detection distractors.

    python benchmarks/photo_distractors.py OUTDIR [--cache DIR] [--max-side 1024]

``lookalike eval --copy-detection PHOTOS --distractors OUTDIR`` and ``benchmarks/dupes.py
quality --distractors OUTDIR`` need many photos that are no copies of the evaluation photos,
and behave like a real collection (``shared/datasets`` has only 56 photographs). Debian ships
photographs inside astronomy, mapping, game and wallpaper packages: telescope and landscape
photos (stellarium, kstars), satellite views (marble), photographic textures and backdrops
(supertuxkart, torcs, extremetuxracer, neverball), the photos of an educational suite
(gcompris, packed in Qt resource files that are read here), and desktop wallpapers.

Packages are fetched with ``apt-get download`` into ``CACHE/debs`` and unpacked with ``dpkg -x``
into ``CACHE/x`` (the cache of ``shared/datasets/build.py``: ``~/.cache/lookalike-bench`` or
``$LOOKALIKE_DATA_CACHE``); nothing is installed. An image is kept when its shorter side is at
least 256 px and it looks like a photograph by its pixels (see ``photo_like``: many colours,
no flat background, no cut-out transparency, not a normal or height map), and once only: of
images with the same 16x16 grey thumbnail hash (one wallpaper at five resolutions) the first
is kept. Kept images are written as JPEG (quality 92, longer side at most ``--max-side``),
named ``<package>__<path inside the package>.jpg``. Every choice is fixed (sorted lists), so
two builds give the same files. ``OUTDIR/sources.json`` records package versions and counts.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = 400_000_000  # star-field panoramas are huge; they are scaled down

PACKAGES = (
    "stellarium-data",
    "kstars-data",
    "marble-data",
    "supertuxkart-data",
    "torcs-data",
    "extremetuxracer-data",
    "neverball-data",
    "gcompris-qt-data",
    "kmahjongg",
    "khangman",
    "desktop-base",
    "gnome-backgrounds",
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "ukui-wallpapers",
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tga", ".dds"}
MAP_NAME = re.compile(
    r"(normal|_nrm|_nm\b|_n\.|bump|height|_spec|specular|_mask|alpha|shadow)", re.I
)
MIN_SIDE = 256


def deb(package: str, cache: Path) -> tuple[Path, str]:
    """Download and unpack one Debian package into the cache: (its root, its version)."""
    debs, root = cache / "debs", cache / "x" / package
    debs.mkdir(parents=True, exist_ok=True)
    found = glob.glob(str(debs / f"{package}_*.deb"))
    if not found:
        command = ["apt-get", "download", package]
        if subprocess.run(command, cwd=debs, capture_output=True).returncode:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True)  # empty package lists
            if subprocess.run(command, cwd=debs, capture_output=True).returncode:
                sys.exit(f"`apt-get download {package}` failed (needs the Debian package lists)")
        found = glob.glob(str(debs / f"{package}_*.deb"))
    done = Path(f"{root}.done")
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        subprocess.run(["dpkg", "-x", found[0], str(root)], check=True)
        done.touch()
    return root, os.path.basename(found[0]).split("_")[1].replace("%3a", ":")


def qt_resources(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of each file in a Qt resource file (``.rcc``, format versions 1-3).

    Header: ``qres``, version, then offsets of the tree, the data and the names (big-endian
    int32). A tree node is name offset (4), flags (2), then a directory's child count and first
    child (4 + 4) or a file's locale (2 + 2) and data offset (4); from version 2 on, 8 bytes of
    modification time follow. Flag 1 is qCompress (4-byte size, then zlib), 4 is zstd (skipped).
    """
    if data[:4] != b"qres":
        return
    version, tree, payload, names = struct.unpack(">4I", data[4:20])
    node_size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (length,) = struct.unpack(">H", data[names + offset : names + offset + 2])
        return data[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    def walk(node: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        at = tree + node * node_size
        name_offset, flags = struct.unpack(">IH", data[at : at + 6])
        path = f"{prefix}/{name(name_offset)}" if node else ""
        if flags & 2:
            count, first = struct.unpack(">II", data[at + 6 : at + 14])
            for child in range(first, first + count):
                yield from walk(child, path)
            return
        (offset,) = struct.unpack(">I", data[at + 10 : at + 14])
        (size,) = struct.unpack(">I", data[payload + offset : payload + offset + 4])
        blob = data[payload + offset + 4 : payload + offset + 4 + size]
        if flags & 4:
            return
        yield path, zlib.decompress(blob[4:]) if flags & 1 else blob

    yield from walk(0, "")


def package_images(root: Path) -> Iterator[tuple[str, bytes]]:
    """(path inside the package, bytes) of every image file, Qt resources opened, sorted."""
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            yield str(path.relative_to(root)), path.read_bytes()
        elif path.suffix.lower() == ".rcc":
            for inner, blob in qt_resources(path.read_bytes()):
                if Path(inner).suffix.lower() in IMAGE_SUFFIXES:
                    yield f"{path.relative_to(root)}{inner}", blob


def photo_like(image: Image.Image) -> str | None:
    """None for a photograph, else why not: cut-outs, drawings and maps fail on their pixels.

    Cut-outs have transparent pixels. Drawings, maps and renders have flat areas: at 256 px,
    pixels exactly equal to their right and lower neighbours (photos have noise and shading:
    under 0.1 but for a black sky; drawings 0.5-0.97), or few colours in a 64x64 thumbnail
    (photos 1,000-4,000 of its 4,096 pixels, drawings 100-600). Thresholds chosen on montages
    of the packages' images.
    """
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA").resize((64, 64)))[..., 3]
        if (alpha < 250).mean() > 0.01:
            return "transparent"
    rgb = image.convert("RGB")
    small = rgb.copy()
    small.thumbnail((256, 256), Image.Resampling.BOX)
    pixels = np.asarray(small)
    right = (pixels[:, 1:] == pixels[:, :-1]).all(axis=2)[:-1]
    down = (pixels[1:] == pixels[:-1]).all(axis=2)[:, :-1]
    if (right & down).mean() >= 0.5:
        return "flat areas"
    thumb = np.asarray(rgb.resize((64, 64), Image.Resampling.BOX)).reshape(-1, 3)
    if len(np.unique(thumb, axis=0)) < 400:
        return "few colours"
    return None


def thumbnail_hash(image: Image.Image) -> str:
    """Hash of a 16x16 grey thumbnail at 4 bits: equal for one picture at several sizes."""
    small = np.asarray(image.convert("L").resize((16, 16), Image.Resampling.BOX)) >> 4
    return hashlib.sha1(small.tobytes()).hexdigest()


def safe_name(package: str, inner: str) -> str:
    return f"{package}__{re.sub(r'[^A-Za-z0-9._-]+', '_', inner)}"[:200] + ".jpg"


def build(out: Path, cache: Path, max_side: int) -> dict[str, object]:
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    seen: set[str] = set()
    sources: dict[str, object] = {}
    for package in PACKAGES:
        root, version = deb(package, cache)
        kept, reasons = 0, dict[str, int]()
        for inner, blob in package_images(root):
            reason = None
            try:
                with Image.open(io.BytesIO(blob)) as image:
                    if MAP_NAME.search(inner):
                        reason = "texture map by name"
                    elif min(image.size) < MIN_SIDE:
                        reason = "small"
                    else:
                        image.draft("RGB", (max_side, max_side))
                        image.load()
                        reason = photo_like(image)
                        key = thumbnail_hash(image)
                        if reason is None and key in seen:
                            reason = "same picture as an earlier one"
                        if reason is None:
                            seen.add(key)
                            photo = image.convert("RGB")
                            photo.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
                            photo.save(tmp / safe_name(package, inner), quality=92)
                            kept += 1
            except (OSError, ValueError, SyntaxError, struct.error) as error:
                reason = f"unreadable ({type(error).__name__})"
            if reason:
                reasons[reason] = reasons.get(reason, 0) + 1
        sources[package] = {"version": version, "kept": kept, "left out": reasons}
        print(f"{package} {version}: {kept} kept, left out {reasons}", flush=True)
    summary = {"images": sum(s["kept"] for s in sources.values()), "packages": sources}  # type: ignore[index]
    (tmp / "sources.json").write_text(json.dumps(summary, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    default_cache = os.environ.get("LOOKALIKE_DATA_CACHE", "~/.cache/lookalike-bench")
    parser.add_argument("--cache", type=Path, default=Path(default_cache).expanduser())
    parser.add_argument("--max-side", type=int, default=1024)
    args = parser.parse_args()
    summary = build(args.out, args.cache, args.max_side)
    print(f"{summary['images']} photographs in {args.out}")


if __name__ == "__main__":
    main()
