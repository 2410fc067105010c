"""Serving indexed files safely: which files may be read, and thumbnails cached by the index."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from lookalike.decode.image import decode_image
from lookalike.store import ImageRecord

THUMBNAIL_SIZES = (128, 256, 512)  # a fixed few, so requests cannot fill the disk
THUMBNAIL_QUALITY = 85


def servable_path(record: ImageRecord | None) -> str | None:
    """The file of an indexed image if it may be served, else None.

    The path comes from the catalogue, never from a request. It must still be a regular
    file, and a symlink is followed only when it stays inside its own folder: a file
    swapped for a link to ``/etc/...`` (or anywhere outside) after indexing is refused.
    """
    if record is None or record.status != "ok":
        return None
    path = record.path
    real = os.path.realpath(path)
    folder = os.path.realpath(os.path.dirname(path))
    if not real.startswith(folder.rstrip(os.sep) + os.sep):
        return None
    try:
        if not stat.S_ISREG(os.stat(real).st_mode):
            return None
    except OSError:
        return None
    return real


class ThumbnailCache:
    """JPEG thumbnails in ``INDEX_DIR/thumbnails/<id>-<size>.jpg``, made once per source version.

    A thumbnail carries its source's mtime as its own, so a source changed since is
    noticed and its thumbnail remade; files are written atomically (temporary, rename).
    """

    def __init__(self, index_dir: Path) -> None:
        self.folder = index_dir / "thumbnails"

    def get(self, image_id: int, source: str, size: int) -> Path:
        """The thumbnail of ``source`` (longer side ``size`` px), made if missing or stale.

        Raises :class:`lookalike.errors.ImageError` if the source no longer decodes.
        """
        if size not in THUMBNAIL_SIZES:
            raise ValueError(f"thumbnail size must be one of {THUMBNAIL_SIZES}")
        path = self.folder / f"{image_id}-{size}.jpg"
        mtime_ns = os.stat(source).st_mtime_ns
        try:
            if path.stat().st_mtime_ns == mtime_ns:
                return path
        except FileNotFoundError:
            pass
        image = decode_image(source, max_side=size).image  # longer side at most ``size``
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{image_id}-{size}.{os.getpid()}.{threading.get_ident()}.tmp"
        image.save(tmp, "JPEG", quality=THUMBNAIL_QUALITY)
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
        tmp.replace(path)
        return path
