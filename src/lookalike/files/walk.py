"""Walk folders for image files, cheaply: one ``stat`` per file, no decoding."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import LookalikeError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff"}
    | {".heic", ".heif", ".avif"}  # decoded when the optional plugin is installed
)


@dataclass(frozen=True)
class FileEntry:
    """An image file as seen by ``stat``: enough to tell whether it changed."""

    path: str  # absolute, symlinks in it kept as the user sees them
    size: int
    mtime_ns: int


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_under(path: str, roots: Iterable[str]) -> bool:
    """Whether absolute ``path`` is one of the absolute ``roots`` or lies inside one."""
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def walk_images(
    roots: Iterable[str | Path], on_error: Callable[[str, str], None] | None = None
) -> Iterator[FileEntry]:
    """Yield every image file under ``roots`` (folders recursively, or files themselves).

    Symlinked folders are followed once each: a folder already visited (same device and
    inode) is not entered again, so symlink loops end. Unreadable folders and files are
    reported to ``on_error(path, reason)`` and skipped. A root that does not exist is an error.
    """
    seen_dirs: set[tuple[int, int]] = set()
    for root in roots:
        path = os.path.abspath(os.fspath(root))
        if not os.path.exists(path):
            raise LookalikeError(f"no such file or folder: {path}")
        if os.path.isdir(path):
            yield from _walk_dir(path, seen_dirs, on_error)
        else:
            st = os.stat(path)
            yield FileEntry(path, st.st_size, st.st_mtime_ns)


def _walk_dir(
    top: str, seen: set[tuple[int, int]], on_error: Callable[[str, str], None] | None
) -> Iterator[FileEntry]:
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if on_error:
                on_error(folder, f"cannot list folder: {exc.strerror or exc}")
            continue
        subfolders = []
        for entry in entries:
            try:
                if entry.is_dir():  # follows symlinks; loops are cut by `seen`
                    subfolders.append(entry.path)
                elif entry.is_file() and is_image_name(entry.name):
                    st = entry.stat()
                    yield FileEntry(entry.path, st.st_size, st.st_mtime_ns)
            except OSError as exc:
                if on_error:
                    on_error(entry.path, f"cannot stat: {exc.strerror or exc}")
        stack.extend(reversed(subfolders))
