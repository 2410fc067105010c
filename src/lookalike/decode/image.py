"""Decode one image file: format checks, EXIF orientation and capture time, fast downscaling."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decode(source, max_side)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"too large, refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not an image, or a format this build cannot read") from exc
    except PermissionError as exc:
        raise ImageError("permission denied") from exc
    except FileNotFoundError as exc:
        raise ImageError("file not found") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"truncated or corrupt: {_one_line(exc)}") from exc


def _decode(source: str | Path | bytes, max_side: int | None) -> DecodedImage:
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty input")
        opened = Image.open(io.BytesIO(source))
    else:
        if Path(source).stat().st_size == 0:
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
        exif = img.getexif()
        orientation = exif.get(EXIF_ORIENTATION)
        taken_at = _exif_time(
            exif.get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL) or exif.get(EXIF_DATETIME)
        )
        if max_side and fmt == "JPEG":
            img.draft("RGB", (max_side, max_side))
        img.load()  # forces the full decode: truncation and corruption surface here
        rgb = _to_rgb(img)
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        rgb.info["exif"] = exif.tobytes()
        rgb = ImageOps.exif_transpose(rgb)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
    if max_side and max(rgb.size) > max_side:
        rgb = letterbox_resize(rgb, max_side)
    meta = ImageMeta(
        width=width, height=height, format=fmt, taken_at=taken_at, orientation=orientation
    )
    return DecodedImage(rgb, meta)


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
    return " ".join(str(exc).split()) or type(exc).__name__


def letterbox_resize(image: Image.Image, size: int) -> Image.Image:
    """Resize so the longer side is ``size`` pixels, keeping the aspect ratio (RGB out)."""
    image = image.convert("RGB") if image.mode != "RGB" else image
    w, h = image.size
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return (
        image if new == (w, h) else image.resize(new, Image.Resampling.BILINEAR, reducing_gap=3.0)
    )
