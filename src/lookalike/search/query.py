"""What a query can be, and how each kind becomes an image to embed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.decode.image import decode_image
from lookalike.errors import ImageError

Query = str | Path | bytes | Image.Image | np.ndarray


@dataclass(frozen=True)
class Hit:
    """One search result; ``score`` is cosine similarity, higher is more alike (1.0 = same)."""

    path: str
    score: float
    id: int
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class SearchResult:
    """The answer to one query of many: hits, or the one-line reason the query failed."""

    query: Query
    hits: list[Hit]
    error: str | None = None


def query_path(query: Query) -> str | None:
    """The absolute path of a query given as a file path, else None."""
    return os.path.abspath(os.fspath(query)) if isinstance(query, str | Path) else None


def query_image(query: Query, max_side: int) -> Image.Image:
    """Decode a path or bytes, or adopt an image or array (H, W) / (H, W, 3) uint8."""
    if isinstance(query, Image.Image):
        return query.convert("RGB")
    if isinstance(query, np.ndarray):
        if query.ndim not in (2, 3) or query.dtype != np.uint8:
            raise ImageError(
                f"an array query must be uint8 (H, W) or (H, W, 3), got {query.dtype} {query.shape}"
            )
        return Image.fromarray(query).convert("RGB")
    if isinstance(query, bytes):
        return decode_image(query, max_side=max_side).image
    return decode_image(os.fspath(query), max_side=max_side).image
