"""What a query can be, how each kind becomes an image to embed, and what a search returns."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from lookalike.decode.image import decode_image
from lookalike.errors import ImageError, LookalikeError
from lookalike.search.region import Box, crop_region

if TYPE_CHECKING:  # the class vocabulary loads only for text queries; the store imports us
    from lookalike.search.classes import TextMatch
    from lookalike.store.record import ImageRecord


@dataclass(frozen=True)
class RegionQuery:
    """Search for the region ``box`` of an image file (path) or encoded image (bytes)."""

    source: str | Path | bytes
    box: Box


@dataclass(frozen=True)
class TextQuery:
    """Search by words ("cat on a sofa"): through the ImageNet classes stored at indexing
    time, or a CLIP model's text encoder (:mod:`lookalike.search.text`)."""

    text: str


Query = str | Path | bytes | Image.Image | np.ndarray | RegionQuery | TextQuery


@dataclass(frozen=True)
class Hit:
    """One search result; ``score`` is cosine similarity, higher is more alike (1.0 = same)."""

    path: str
    score: float
    id: int
    width: int | None = None
    height: int | None = None
    # With orientations: what turns this image into the query ("rot90", "flip"...), or None.
    transform: str | None = None

    @classmethod
    def of(cls, record: ImageRecord, score: float) -> Hit:
        """The hit for an indexed image's record and its score."""
        return cls(record.path, float(score), record.id, record.width, record.height)


@dataclass(frozen=True)
class SearchResult:
    """The answer to one query of many: hits, or the one-line reason the query failed."""

    query: Query
    hits: list[Hit]
    error: str | None = None
    # The exception behind ``error`` (an ImageError, or a bad region), for callers that raise.
    cause: LookalikeError | None = field(default=None, repr=False, compare=False)
    # For a TextQuery answered through classes: which classes its words matched, and how.
    matched: TextMatch | None = field(default=None, compare=False)


def query_path(query: Query) -> str | None:
    """The absolute path of a query given as a whole file, else None."""
    return os.path.abspath(os.fspath(query)) if isinstance(query, str | Path) else None


def query_image(query: Query, max_side: int) -> Image.Image:
    """Decode a path or bytes, cut a region, or adopt an image or array (H, W) / (H, W, 3)
    uint8. Raises :class:`ImageError` (a bad image) or another LookalikeError (a bad region)."""
    if isinstance(query, TextQuery):
        raise LookalikeError("a text query has no image")  # ranked by lookalike.search.text
    if isinstance(query, RegionQuery):
        source = query.source if isinstance(query.source, bytes) else os.fspath(query.source)
        return crop_region(source, query.box)
    if isinstance(query, Image.Image):
        return query.convert("RGB")
    if isinstance(query, np.ndarray):
        if query.ndim not in (2, 3) or query.dtype != np.uint8 or 0 in query.shape:
            raise ImageError(
                f"an array query must be uint8 (H, W) or (H, W, 3), got {query.dtype} {query.shape}"
            )
        return Image.fromarray(query).convert("RGB")
    if isinstance(query, bytes):
        return decode_image(query, max_side=max_side).image
    return decode_image(os.fspath(query), max_side=max_side).image
