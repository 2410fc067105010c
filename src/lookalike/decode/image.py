"""Decode one image file: format checks, EXIF orientation and capture time, fast downscaling."""

from __future__ import annotations

import io
import stat
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lookalike.errors import ImageError

try:  # HEIC/AVIF through the optional plugin (pip install lookalike[heif])
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:
    pass

# Pillow's own guard against decompression bombs (about 89 megapixels): beyond it we refuse.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

EXIF_ORIENTATION = 0x0112
EXIF_DATETIME = 0x0132
EXIF_IFD = 0x8769
EXIF_DATETIME_ORIGINAL = 0x9003

# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose,
# without re-serialising the EXIF block, which fails on malformed tags).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Pillow warns on stderr about each malformed EXIF tag it skips; a bad tag is recorded in the
# image's ``warnings`` instead (decode threads cannot capture warnings safely: the filters
# are process-wide).
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")
# Pillow warns at open about an image over MAX_PIXELS, which _decode then refuses with a
# reason. (A catch_warnings around each decode would be worse than noise: it restores the
# process-wide filters when it exits, undoing another thread's, such as the ONNX export's.)
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True, kw_only=True)
class ImageMeta:
    """What decoding tells about an image beyond its pixels; the catalogue keeps these fields
    for every image (:class:`lookalike.store.record.ImageRecord` extends this class).

    ``width`` and ``height`` are the full image's, after EXIF orientation. Every field is
    optional, because a file that failed to decode has none of them.
    """

    width: int | None = None
    height: int | None = None
    format: str | None = None
    taken_at: str | None = None  # ISO 8601 local time from EXIF, when present
    orientation: int | None = None  # EXIF orientation tag 1..8, when present
    warnings: str | None = None  # metadata that was malformed and ignored, "; "-separated


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image ready to embed, and its metadata. ``image`` may be downscaled (never below
    the size asked for); ``meta`` describes the full image."""

    image: Image.Image
    meta: ImageMeta


def decode_image(source: str | Path | bytes, max_side: int | None = None) -> DecodedImage:
    """Decode a file path or encoded bytes; raises :class:`ImageError` with a one-line reason.

    With ``max_side`` the image is shrunk so its longer side is at most that many pixels,
    using JPEG's DCT-domain draft mode first, which makes large photos cheap to decode.
    """
    try:
        return _decode(source, max_side)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"too large, refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not an image, or a format this build cannot read") from exc
    except PermissionError as exc:
        raise ImageError("permission denied") from exc
    except FileNotFoundError as exc:
        raise ImageError("file not found") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"truncated or corrupt: {_one_line(exc)}") from exc
    except Exception as exc:  # Pillow's decoders raise struct.error, IndexError... on bad files
        raise ImageError(f"corrupt ({type(exc).__name__}: {_one_line(exc)})") from exc


def _decode(source: str | Path | bytes, max_side: int | None) -> DecodedImage:
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty input")
        opened = Image.open(io.BytesIO(source))
    else:
        info = Path(source).stat()
        if stat.S_ISDIR(info.st_mode):
            raise ImageError("is a folder, not an image file")
        if not stat.S_ISREG(info.st_mode):  # opening a FIFO would block for ever
            raise ImageError("not a regular file (a FIFO, socket or device)")
        if info.st_size == 0:
            raise ImageError("empty file (0 bytes)")
        opened = Image.open(source)
    with opened as img:
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise ImageError(
                f"too large: {width}x{height} is over {MAX_PIXELS:,} pixels "
                "(refused as a possible decompression bomb)"
            )
        fmt = img.format or "unknown"
        orientation, taken_at, problems = _read_exif(img)
        if max_side and fmt == "JPEG":
            img.draft("RGB", (max_side, max_side))
        img.load()  # forces the full decode: truncation and corruption surface here
        rgb = _to_rgb(img)
    if orientation in _UPRIGHT:
        rgb = rgb.transpose(_UPRIGHT[orientation])
        if orientation in (5, 6, 7, 8):
            width, height = height, width
    if max_side and max(rgb.size) > max_side:
        rgb = letterbox_resize(rgb, max_side)
    meta = ImageMeta(
        width=width,
        height=height,
        format=fmt,
        taken_at=taken_at,
        orientation=orientation,
        warnings="; ".join(problems) or None,
    )
    return DecodedImage(rgb, meta)


def _read_exif(img: Image.Image) -> tuple[int | None, str | None, list[str]]:
    """(orientation 1..8, ISO capture time, problems) from the EXIF block, if any.

    Metadata is optional: a malformed block or tag is a problem to record, never a reason to
    lose the pixels. Pillow's EXIF parser raises many kinds of error on hostile bytes
    (TypeError, struct.error, KeyError... found by fuzzing), hence the broad catches."""
    problems: list[str] = []
    try:
        exif = img.getexif()
        orientation = exif.get(EXIF_ORIENTATION)
    except Exception as exc:
        return None, None, [f"EXIF ignored, unreadable ({type(exc).__name__}: {_one_line(exc)})"]
    if orientation is not None and (type(orientation) is not int or not 1 <= orientation <= 8):
        problems.append(f"EXIF orientation ignored: {_one_line_repr(orientation)} is not 1..8")
        orientation = None
    try:
        stamp = exif.get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL) or exif.get(EXIF_DATETIME)
    except Exception as exc:
        problems.append(f"EXIF sub-block ignored ({type(exc).__name__}: {_one_line(exc)})")
        stamp = exif.get(EXIF_DATETIME)
    taken_at = _exif_time(stamp)
    if stamp is not None and taken_at is None:
        problems.append(f"EXIF capture time ignored: {_one_line_repr(stamp)} is not a date")
    return orientation, taken_at, problems


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode -> RGB; transparency is flattened onto white, 16-bit and float are rescaled."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(img, dtype=np.float64)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else pixels * 0
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _exif_time(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _one_line(exc: BaseException) -> str:
    return _printable(" ".join(str(exc).split()) or type(exc).__name__)


def _one_line_repr(value: object, limit: int = 40) -> str:
    text = _printable(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _printable(text: str) -> str:
    """Valid UTF-8 (a message may quote a file name that is not), for SQLite and terminals."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def letterbox_resize(image: Image.Image, size: int) -> Image.Image:
    """Resize so the longer side is ``size`` pixels, keeping the aspect ratio (RGB out)."""
    image = image.convert("RGB") if image.mode != "RGB" else image
    w, h = image.size
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return (
        image if new == (w, h) else image.resize(new, Image.Resampling.BILINEAR, reducing_gap=3.0)
    )
