"""A seeded fuzzer of image metadata: EXIF IFDs, JPEG APP segments, PNG text/iCCP/eXIf chunks.

Shared by ``test_metadata_fuzz.py`` (a few seconds in the suite) and
``benchmarks/metadata_fuzz.py`` (a longer run). Each input is a real photograph (scikit-image's
cat, small) saved with rich metadata, then one metadata block is damaged: EXIF entries get a
wrong type, count or offset, bytes are flipped, inserted or deleted, segments and chunks are
truncated (PNG chunks keep a valid CRC so that Pillow parses what is inside them). The pixel
data is left alone: the question is whether bad metadata can abort a decode.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageCms, PngImagePlugin

from lookalike.decode.image import DecodedImage, decode_image
from lookalike.errors import ImageError

XMP = (
    b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf="
    b"'http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description/></rdf:RDF></x:xmpmeta>"
)


@dataclass(frozen=True)
class FuzzInput:
    name: str  # which seed file and mutation, for the failure message
    data: bytes


@cache
def _photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea()).resize((60, 40))


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x0132] = "2021:06:01 12:00:00"  # DateTime
    exif[0x010F] = "Camera maker"
    exif[0x011A] = 72.0  # XResolution (a rational)
    exif.get_ifd(0x8769)[0x9003] = "2021:06:01 11:59:58"  # DateTimeOriginal
    return exif


@cache
def seeds() -> dict[str, bytes]:
    """The undamaged files, each with EXIF and more metadata blocks."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out: dict[str, bytes] = {}
    buffer = io.BytesIO()
    _photo().save(buffer, "JPEG", exif=_exif(), icc_profile=icc, quality=80)
    jpeg = buffer.getvalue()
    out["jpeg"] = jpeg[:2] + _segment(0xE1, XMP) + jpeg[2:]  # an XMP packet before the rest
    text = PngImagePlugin.PngInfo()
    text.add_text("Title", "a cat")
    text.add_text("Comment", "compressed " * 20, zip=True)
    text.add_itxt("Description", "un chat", lang="fr", tkey="Beschreibung", zip=True)
    text.add_text("Raw profile type exif", _raw_profile(_exif().tobytes()))
    buffer = io.BytesIO()
    _photo().save(buffer, "PNG", pnginfo=text, exif=_exif(), icc_profile=icc)
    out["png"] = buffer.getvalue()
    buffer = io.BytesIO()
    _photo().save(buffer, "WEBP", exif=_exif(), icc_profile=icc, quality=80)
    out["webp"] = buffer.getvalue()
    return out


def fuzz_inputs(seed: int) -> Iterator[FuzzInput]:
    """An endless, reproducible stream of damaged files."""
    rng = random.Random(seed)
    files = seeds()
    while True:
        kind = rng.choice(sorted(files))
        data = files[kind]
        if kind == "jpeg":
            name, damaged = _damage_jpeg(rng, data)
        elif kind == "png":
            name, damaged = _damage_png(rng, data)
        else:
            name, damaged = _damage_riff(rng, data)
        yield FuzzInput(f"{kind}/{name}", damaged)


@dataclass(frozen=True)
class Outcome:
    decoded: bool  # pixels came out (else an ImageError refused the file)
    problem: str | None  # what went wrong, if anything did
    warned: bool = False  # decoded, with metadata ignored as malformed


def check(item: FuzzInput) -> Outcome:
    """Fine: decoded to usable pixels and well-typed metadata, or refused with an
    ``ImageError`` of one line. Anything else is a problem."""
    try:
        decoded = decode_image(item.data, max_side=32)
    except ImageError as exc:
        reason = str(exc)
        fine = reason and "\n" not in reason
        return Outcome(False, None if fine else f"ImageError not one line: {reason!r}")
    except Exception as exc:
        return Outcome(False, f"{type(exc).__name__}: {exc}")
    warned = bool(getattr(decoded.meta, "warnings", None))  # absent before the field existed
    return Outcome(True, _bad_result(decoded), warned)


def _bad_result(decoded: DecodedImage) -> str | None:
    meta = decoded.meta
    if decoded.image.mode != "RGB" or min(decoded.image.size) < 1:
        return f"unusable image {decoded.image.mode} {decoded.image.size}"
    if not (isinstance(meta.width, int) and isinstance(meta.height, int)):
        return f"size {meta.width!r}x{meta.height!r}"
    if meta.orientation is not None and meta.orientation not in range(1, 9):
        return f"orientation {meta.orientation!r}"
    if meta.taken_at is not None and not isinstance(meta.taken_at, str):
        return f"taken_at {meta.taken_at!r}"
    warnings = getattr(meta, "warnings", None)  # absent before the field existed
    if warnings is not None and (not isinstance(warnings, str) or "\n" in warnings):
        return f"warnings {warnings!r}"
    return None


# damage to one block of bytes


def _mutate(rng: random.Random, block: bytes) -> tuple[str, bytes]:
    data = bytearray(block)
    if not data:
        return "empty", bytes(data)
    how = rng.choice(["flip", "interesting", "insert", "delete", "garbage", "truncate"])
    at = rng.randrange(len(data))
    if how == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif how == "interesting":
        value = rng.choice([b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff", b"\x00\x00\x00\x00"])
        data[at : at + len(value)] = value
    elif how == "insert":
        data[at:at] = rng.randbytes(rng.randint(1, 16))
    elif how == "delete":
        del data[at : at + rng.randint(1, 16)]
    elif how == "garbage":
        data[at : at + 32] = rng.randbytes(32)
    else:
        del data[at:]
    return how, bytes(data)


def _damage_tiff(rng: random.Random, tiff: bytes) -> tuple[str, bytes]:
    """Damage an EXIF (TIFF) block: mostly one IFD entry's type, count or value, as a
    malformed camera or editor writes them; else any bytes."""
    entries = _ifd_entries(tiff)
    if not entries or rng.random() < 0.3:
        return _mutate(rng, tiff)
    order = "<" if tiff[:2] == b"II" else ">"
    at = rng.choice(entries)
    tag, kind, count, value = struct.unpack(order + "HHII", tiff[at : at + 12])
    field = rng.choice(["type", "count", "value", "tag"])
    if field == "type":
        kind = rng.choice([0, 1, 2, 3, 4, 5, 7, 9, 10, 11, 12, 13, 99, 0xFFFF])
    elif field == "count":
        count = rng.choice([0, 2, 3, 255, 65535, 0x7FFFFFFF, 0xFFFFFFFF])
    elif field == "value":
        value = rng.choice([0, 1, 9, 0xFFFF, len(tiff), 0x7FFFFFFF, rng.getrandbits(32)])
    else:
        tag = rng.choice([0x0112, 0x011A, 0x0132, 0x8769, 0x8825, 0xA005, 0x927C])
    entry = struct.pack(order + "HHII", tag, kind, count, value)
    return f"ifd-{field}", tiff[:at] + entry + tiff[at + 12 :]


def _ifd_entries(tiff: bytes) -> list[int]:
    """Offsets of IFD0's 12-byte entries in a TIFF block (empty if it does not parse)."""
    if tiff[:2] not in (b"II", b"MM") or len(tiff) < 10:
        return []
    order = "<" if tiff[:2] == b"II" else ">"
    (first,) = struct.unpack(order + "I", tiff[4:8])
    if first + 2 > len(tiff):
        return []
    (n,) = struct.unpack(order + "H", tiff[first : first + 2])
    return [first + 2 + 12 * i for i in range(n) if first + 14 + 12 * i <= len(tiff)]


def _damage_exif_payload(rng: random.Random, payload: bytes) -> tuple[str, bytes]:
    """An ``Exif\\0\\0`` + TIFF payload damaged inside its TIFF part."""
    head = b"Exif\x00\x00" if payload.startswith(b"Exif\x00\x00") else b""
    name, tiff = _damage_tiff(rng, payload[len(head) :])
    return name, head + tiff


# JPEG: APPn segments before the image data


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, payload start, payload end) of the APPn and COM segments before SOS."""
    found, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF and data[at + 1] != 0xDA:
        marker = data[at + 1]
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            found.append((marker, at + 4, at + 2 + length))
        at += 2 + length
    return found


def _damage_jpeg(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    marker, start, end = rng.choice(_jpeg_segments(data))
    payload = data[start:end]
    if payload.startswith(b"Exif\x00\x00"):
        name, damaged = _damage_exif_payload(rng, payload)
    else:
        name, damaged = _mutate(rng, payload)
    if rng.random() < 0.2:  # a segment whose declared length no longer matches its bytes
        return f"app{marker - 0xE0:x}-{name}-unframed", data[:start] + damaged + data[end:]
    framed = _segment(marker, damaged[:65533])
    return f"app{marker - 0xE0:x}-{name}", data[: start - 4] + framed + data[end:]


# PNG: ancillary chunks, re-framed with a valid CRC


def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, chunk start, chunk end) of every chunk."""
    found, at = [], 8
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        found.append((data[at + 4 : at + 8], at, at + 12 + length))
        at += 12 + length
    return found


def _damage_png(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    chunks = [c for c in _png_chunks(data) if c[0] in (b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"eXIf")]
    kind, start, end = rng.choice(chunks)
    body = data[start + 8 : end - 4]
    if kind == b"eXIf":
        name, damaged = _damage_exif_payload(rng, body)
    elif kind in (b"zTXt", b"iCCP", b"iTXt") and rng.random() < 0.5:
        name, damaged = _damage_compressed(rng, body)
    else:
        name, damaged = _mutate(rng, body)
    chunk = struct.pack(">I", len(damaged)) + kind + damaged
    chunk += struct.pack(">I", zlib.crc32(kind + damaged))
    return f"{kind.decode()}-{name}", data[:start] + chunk + data[end:]


def _damage_compressed(rng: random.Random, body: bytes) -> tuple[str, bytes]:
    """Damage the deflated part of a zTXt/iCCP/iTXt chunk (the bytes after the last NUL of
    its header) so that it still inflates, or almost."""
    cut = body.rfind(b"\x00") + 1 if body.count(b"\x00") else 0
    try:
        inner = zlib.decompress(body[cut:])
    except zlib.error:
        return _mutate(rng, body)
    name, damaged = _mutate(rng, inner)
    return f"inflated-{name}", body[:cut] + zlib.compress(damaged)


# WebP: RIFF chunks (EXIF, ICCP)


def _damage_riff(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    chunks, at = [], 12
    while at + 8 <= len(data):
        kind = data[at : at + 4]
        (length,) = struct.unpack("<I", data[at + 4 : at + 8])
        chunks.append((kind, at, at + 8 + length + (length & 1)))
        at += 8 + length + (length & 1)
    metadata = [c for c in chunks if c[0] in (b"EXIF", b"ICCP")]
    kind, start, end = rng.choice(metadata)
    (length,) = struct.unpack("<I", data[start + 4 : start + 8])
    body = data[start + 8 : start + 8 + length]
    mutate: Callable[[random.Random, bytes], tuple[str, bytes]] = (
        _damage_exif_payload if kind == b"EXIF" else _mutate
    )
    name, damaged = mutate(rng, body)
    chunk = kind + struct.pack("<I", len(damaged)) + damaged + b"\x00" * (len(damaged) & 1)
    riff = data[12:start] + chunk + data[end:]
    return f"{kind.decode()}-{name}", b"RIFF" + struct.pack("<I", len(riff) + 4) + b"WEBP" + riff


def _raw_profile(blob: bytes) -> str:
    """ImageMagick's "Raw profile type exif" text: a header line, then hex."""
    return f"\nexif\n{len(blob):8d}\n{blob.hex()}\n"
