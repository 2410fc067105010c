"""Walk folders for image files, cheaply: one ``stat`` per file, no decoding."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import LookalikeError
from lookalike.files.paths import display_path

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
    roots: Iterable[str | Path],
    on_error: Callable[[str, str], None] | None = None,
    exclude: Iterable[str | Path] = (),
    on_folder: Callable[[str], None] | None = None,
) -> Iterator[FileEntry]:
    """Yield every image file under ``roots`` (folders recursively, or files themselves).

    Never opens a file: one ``stat`` each (a FIFO opened for reading blocks for ever).
    Not entered: hidden folders (a name starting with "." such as ``.thumbnails``, ``.cache``
    or ``.git``: caches and tools' data, not photos; a root itself is walked even if hidden),
    and the folders in ``exclude`` (the index's own directory, whose thumbnails would
    otherwise be indexed as near-duplicates of every image). Symlinked folders are followed
    once each: a folder already visited (same device and inode) is not entered again, so
    symlink loops end.

    What cannot be used is reported to ``on_error(path, reason)`` and skipped: a folder that
    cannot be listed, an entry that cannot be stat'ed, a dangling symlink (unless its name says
    it is no image), an image name that is not a regular file (FIFO, socket, device). A root
    that does not exist is an error.

    ``on_folder(folder)`` is called before each folder is listed; it may raise to stop the
    walk (a cancelled job), which ending the walk quietly could not: the caller would take
    the folders not yet walked for deleted ones.
    """
    seen_dirs = {key for key in map(_folder_key, exclude) if key is not None}
    report = on_error or (lambda path, reason: None)
    for root in roots:
        path = os.path.abspath(os.fspath(root))
        if not os.path.exists(path):
            raise LookalikeError(f"no such file or folder: {display_path(path)}")
        if os.path.isdir(path):
            yield from _walk_dir(path, seen_dirs, report, on_folder)
        else:
            name, is_link = os.path.basename(path), os.path.islink(path)
            yield from _file_entry(path, name, is_link, report, explicit=True)


def _folder_key(folder: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _walk_dir(
    top: str,
    seen: set[tuple[int, int]],
    report: Callable[[str, str], None],
    on_folder: Callable[[str], None] | None,
) -> Iterator[FileEntry]:
    stack = [top]
    while stack:
        folder = stack.pop()
        if on_folder:
            on_folder(folder)
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            report(folder, f"cannot list folder: {exc.strerror or exc}")
            continue
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # follows symlinks; loops are cut by `seen`
            except OSError as exc:
                report(entry.path, f"cannot stat: {exc.strerror or exc}")
                continue
            if is_dir:
                if not entry.name.startswith("."):
                    subfolders.append(entry.path)
            else:
                is_link = entry.is_symlink()
                yield from _file_entry(entry.path, entry.name, is_link, report, explicit=False)
        stack.extend(reversed(subfolders))


def _file_entry(
    path: str, name: str, is_link: bool, report: Callable[[str, str], None], explicit: bool
) -> Iterator[FileEntry]:
    """The entry for an image file (any name when ``explicit``), or the reason it is none.
    Only candidates cost a ``stat``: image names, and symlinks whose name may be a folder's."""
    image_name = explicit or is_image_name(name)
    if not image_name and not (is_link and not os.path.splitext(name)[1]):
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if is_link:
            report(path, f"dangling symlink (to {display_path(os.readlink(path))})")
        return
    except OSError as exc:
        report(path, f"cannot stat: {exc.strerror or exc}")
        return
    if not image_name:
        return
    if not stat.S_ISREG(st.st_mode):
        report(path, f"not a regular file ({_file_kind(st.st_mode)})")
        return
    yield FileEntry(path, st.st_size, st.st_mtime_ns)


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"
