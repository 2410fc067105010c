from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.decode.image import decode_image
from lookalike.errors import ImageError


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea())  # 451x300 RGB photograph of a cat


@pytest.mark.parametrize(
    ("suffix", "fmt", "mode"),
    [
        (".jpg", "JPEG", "RGB"),
        (".png", "PNG", "RGB"),
        (".webp", "WEBP", "RGB"),
        (".bmp", "BMP", "RGB"),
        (".tiff", "TIFF", "RGB"),
        (".gif", "GIF", "P"),
        (".png", "PNG", "L"),
        (".png", "PNG", "RGBA"),
    ],
)
def test_formats_decode_to_rgb_with_their_size(
    photo: Image.Image, tmp_path: Path, suffix: str, fmt: str, mode: str
) -> None:
    path = tmp_path / f"photo{suffix}"
    photo.convert(mode).save(path, fmt)
    decoded = decode_image(path)
    assert decoded.meta.format == fmt
    assert (decoded.meta.width, decoded.meta.height) == (451, 300)
    assert decoded.image.mode == "RGB" and decoded.image.size == (451, 300)
    # the pixels are the photo's, not a blank canvas
    assert np.asarray(decoded.image).std() > 20


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_avif_and_heic_decode_with_pillows_plugin(
    photo: Image.Image, tmp_path: Path, fmt: str
) -> None:
    if fmt == "HEIF":
        pytest.importorskip("pillow_heif", reason="HEIC needs the optional pillow-heif plugin")
    path = tmp_path / f"photo.{fmt.lower()}"
    photo.save(path, fmt, quality=80)
    decoded = decode_image(path)
    assert decoded.meta.format == fmt and decoded.image.size == (451, 300)
    assert np.asarray(decoded.image).std() > 20


def test_gif_takes_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    pixel = decode_image(tmp_path / "anim.gif").image.getpixel((5, 5))
    assert isinstance(pixel, tuple) and pixel[0] > 200 and pixel[2] < 50


def test_transparency_is_flattened_onto_white(tmp_path: Path) -> None:
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert decode_image(tmp_path / "clear.png").image.getpixel((10, 10)) == (255, 255, 255)


def test_exif_orientation_is_applied_and_capture_time_read(tmp_path: Path) -> None:
    # Stored landscape, left half red and right half blue; orientation 6 = rotate 90 clockwise.
    stored = Image.new("RGB", (80, 40), (255, 0, 0))
    stored.paste((0, 0, 255), (40, 0, 80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "2021:07:14 09:30:05"
    stored.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    decoded = decode_image(tmp_path / "rotated.jpg")
    assert (decoded.meta.width, decoded.meta.height) == (40, 80) and decoded.image.size == (40, 80)
    assert decoded.meta.orientation == 6
    assert decoded.meta.taken_at == "2021-07-14T09:30:05"
    top, bottom = decoded.image.getpixel((20, 5)), decoded.image.getpixel((20, 75))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 and bottom[2] > 200  # the red half is now on top


def test_max_side_shrinks_large_jpegs_keeping_the_full_size_on_record(
    photo: Image.Image, tmp_path: Path
) -> None:
    big = photo.resize((1804, 1200))
    big.save(tmp_path / "big.jpg", quality=90)
    decoded = decode_image(tmp_path / "big.jpg", max_side=224)
    assert (decoded.meta.width, decoded.meta.height) == (1804, 1200)
    assert max(decoded.image.size) == 224


def test_sixteen_bit_greyscale_is_rescaled(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (16, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    pixels = np.asarray(decode_image(tmp_path / "deep.png").image)
    assert pixels[0, 0, 0] == 0 and pixels[0, -1, 0] == 255


def test_bytes_are_decoded_like_files(photo: Image.Image) -> None:
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    assert decode_image(buffer.getvalue()).image.size == (451, 300)


# every bad file is skipped with a one-line reason


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and header declaring a huge image, with one tiny data chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("empty.jpg", lambda good: b"", "empty file"),
        ("truncated.jpg", lambda good: good[: len(good) // 2], "truncated or corrupt"),
        ("corrupt.jpg", lambda good: good[:200] + bytes(range(256)) * 40, "truncated or corrupt"),
        ("text.png", lambda good: b"this is a shopping list, not a picture\n", "not an image"),
        ("bomb.png", lambda good: png_header_only(40_000, 40_000), "too large"),
        ("big.png", lambda good: png_header_only(10_000, 9_000), "too large"),
    ],
)
def test_bad_files_raise_image_error_with_one_line_reason(
    photo: Image.Image, tmp_path: Path, name: str, make: Callable[[bytes], bytes], reason: str
) -> None:
    good = io.BytesIO()
    photo.save(good, "JPEG", quality=90)
    path = tmp_path / name
    path.write_bytes(make(good.getvalue()))
    with pytest.raises(ImageError) as caught:
        decode_image(path, max_side=224)
    message = str(caught.value)
    assert reason in message and "\n" not in message


def test_unreadable_file_is_permission_denied(
    photo: Image.Image,
    shared_tmp: Path,
    as_unprivileged: Callable[[Callable[[], object]], tuple[str, str]],
) -> None:
    path = shared_tmp / "secret.jpg"
    photo.save(path)
    path.chmod(0)
    kind, text = as_unprivileged(lambda: decode_image(path))
    assert (kind, text) == ("raised", "ImageError: permission denied")


def test_a_folder_or_a_fifo_is_refused_by_name_without_being_opened(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"^is a folder, not an image file$"):
        decode_image(tmp_path)
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it would block for ever
    with pytest.raises(ImageError, match="FIFO"):
        decode_image(tmp_path / "pipe.jpg")


# metadata is optional: a malformed tag is ignored with a warning, the pixels kept


def exif_block(*entries: tuple[int, int, int, bytes]) -> bytes:
    """A raw little-endian EXIF block with IFD0 entries (tag, type, count, value bytes), as a
    camera or editor may write them: Pillow's own writer would refuse the bad ones."""
    head = 8 + 2 + 12 * len(entries) + 4
    ifd, extra = struct.pack("<H", len(entries)), b""
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            ifd += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        else:
            ifd += struct.pack("<HHII", tag, kind, count, head + len(extra))
            extra += value
    return b"Exif\0\0II*\0" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + extra


SHORT, ASCII, LONG, RATIONAL = 3, 2, 4, 5
ROTATE_6 = (0x0112, SHORT, 1, struct.pack("<H", 6))


@pytest.mark.parametrize(
    ("entries", "orientation", "warning"),
    [
        ([(0x0112, SHORT, 2, struct.pack("<HH", 6, 3))], 6, None),  # count 2: the first counts
        ([(0x0112, RATIONAL, 1, struct.pack("<II", 1, 2))], None, "orientation ignored: 0.5"),
        ([(0x0112, ASCII, 4, b"six\0")], None, "orientation ignored: 'six'"),
        ([(0x0112, SHORT, 1, struct.pack("<H", 9))], None, "orientation ignored: 9"),
        # a malformed XResolution made re-serialising the EXIF to rotate raise TypeError
        ([ROTATE_6, (0x011A, ASCII, 4, b"abc\0")], 6, None),
        ([ROTATE_6, (0x011A, RATIONAL, 2, bytes(16))], 6, None),
        ([(0x0132, LONG, 1, struct.pack("<I", 5))], None, "capture time ignored: 5"),
    ],
)
def test_malformed_exif_is_ignored_with_a_warning_and_the_pixels_decoded(
    photo: Image.Image,
    tmp_path: Path,
    entries: list[tuple[int, int, int, bytes]],
    orientation: int | None,
    warning: str | None,
) -> None:
    path = tmp_path / "odd-exif.jpg"
    photo.save(path, exif=exif_block(*entries), quality=90)
    decoded = decode_image(path, max_side=224)
    assert decoded.meta.orientation == orientation
    size = (300, 451) if orientation == 6 else (451, 300)
    assert (decoded.meta.width, decoded.meta.height) == size
    assert np.asarray(decoded.image).std() > 20  # the cat, not a blank canvas
    if warning is None:
        assert decoded.meta.warnings is None
    else:
        assert decoded.meta.warnings and warning in decoded.meta.warnings
