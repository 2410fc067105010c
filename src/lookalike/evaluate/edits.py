"""Edits that make a near-duplicate of a photo, as people crop, rotate and recompress them.

Each edit is deterministic given the image and a seeded ``random.Random``.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Edit = Callable[[Image.Image, random.Random], Image.Image]


def centre_crop(image: Image.Image, rng: random.Random) -> Image.Image:
    """Keep the central half of the area."""
    w, h = image.size
    cw, ch = round(w / 2**0.5), round(h / 2**0.5)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def offset_crop(image: Image.Image, rng: random.Random) -> Image.Image:
    """Half the area, from a random corner region."""
    w, h = image.size
    cw, ch = round(w / 2**0.5), round(h / 2**0.5)
    left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return image.crop((left, top, left + cw, top + ch))


def flip(image: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.mirror(image)


def rotate_90(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.transpose(Image.Transpose.ROTATE_90)


def rotate_10(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.rotate(10, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(0, 0, 0))


def downscale(image: Image.Image, rng: random.Random) -> Image.Image:
    """Longer side to 160 px."""
    scaled = image.copy()
    scaled.thumbnail((160, 160), Image.Resampling.LANCZOS)
    return scaled


def jpeg_15(image: Image.Image, rng: random.Random) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=15)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def greyscale(image: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def brightness_contrast(image: Image.Image, rng: random.Random) -> Image.Image:
    brighter = ImageEnhance.Brightness(image).enhance(rng.uniform(1.25, 1.45))
    return ImageEnhance.Contrast(brighter).enhance(rng.uniform(0.6, 0.75))


def blur(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=max(image.size) / 150))


def text_overlay(image: Image.Image, rng: random.Random) -> Image.Image:
    """Large caption across the middle, as memes and watermarks do."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    size = max(12, out.height // 6)
    font = ImageFont.load_default(size=size)
    text = rng.choice(["LOOK ALIKE", "COPYRIGHT", "SALE 50%", "HELLO WORLD"])
    draw.text(
        (out.width * 0.05, out.height * 0.4),
        text,
        fill=(255, 255, 0),
        font=font,
        stroke_width=max(1, size // 12),
        stroke_fill=(0, 0, 0),
    )
    return out


def border(image: Image.Image, rng: random.Random) -> Image.Image:
    width = max(4, max(image.size) // 12)
    return ImageOps.expand(image.convert("RGB"), border=width, fill=(255, 255, 255))


EDITS: dict[str, Edit] = {
    "centre_crop": centre_crop,
    "offset_crop": offset_crop,
    "flip": flip,
    "rotate_90": rotate_90,
    "rotate_10": rotate_10,
    "downscale_160": downscale,
    "jpeg_15": jpeg_15,
    "greyscale": greyscale,
    "brightness_contrast": brightness_contrast,
    "blur": blur,
    "text_overlay": text_overlay,
    "border": border,
}


def apply_edit(name: str, image: Image.Image, seed: int = 0) -> Image.Image:
    """Apply the named edit with a fixed seed (same input, same output)."""
    return EDITS[name](image.convert("RGB"), random.Random(f"{name}:{seed}"))
