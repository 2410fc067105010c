"""Why two images matched: their similarity score decomposed over pairs of feature-map cells
(after Stylianou et al., "Visualizing Deep Similarity Networks", WACV 2019).

The index's score is the cosine of two pooled vectors. With average pooling the pooled vector
is the mean of the final map's cells, so

    cosine(q, r) = sum over cell pairs (i, j) of <q_i, r_j> / (|Q| |R| norm_q norm_r)

(|Q|, |R| the numbers of cells, norm_q, norm_r the pooled vectors' lengths): each pair's term
says how much those two regions added to the score, the query's heat of cell i is the sum over
j, the result's heat of cell j the sum over i, and each map sums to the score exactly.

The same holds exactly through everything else between the map and the score, because each
step is linear in the cells' shares (:meth:`FloatNetwork.cell_vectors`): an affine head
(seed_cnn's fully connected layer, a trained model's head) and the index's PCA-whitening
(``(x - mean) P``, applied to the unit vector: the mean is spread evenly over the cells).
For GeM (trained models) and max pooling the split of the pooled vector between the cells is
a choice, not a fact: each cell gets, channel by channel, its share of the sum of x^p (all of
it for the maximum's cell), so the maps still sum to the score, but a cell's heat is an
attribution. The maps come from the float network: an int8 index's own score differs a
little from their sum, and both are given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.decode.image import DecodedImage, decode_image
from lookalike.errors import LookalikeError
from lookalike.explain.network import FloatNetwork, float_network
from lookalike.files.paths import display_path
from lookalike.index import Index
from lookalike.search.filters import Filters
from lookalike.search.query import Query, RegionQuery, query_image
from lookalike.search.region import Box
from lookalike.store import ImageRecord
from lookalike.store.whitening import Whitening

DISPLAY_SIDE = 512  # pixels: the pictures show the images at most this large
TOP_PAIRS = 10
AGREE = 1e-4  # the index's score and the maps' sum are the same within this


@dataclass(frozen=True)
class Side:
    """One of the two images, and its share of the score.

    ``heat`` float32 (rows, cols): each final-map cell's share of the score (it sums to the
    score). ``cells`` float32 (rows, cols, 4): each cell's (left, top, right, bottom) in the
    original image's pixels (after EXIF orientation), a region's offset included; cells over
    letterbox padding lie partly outside the image. ``image`` is the whole image, at most
    DISPLAY_SIDE pixels, for pictures.
    """

    label: str  # the path as given, or "upload"
    image_id: int | None
    width: int
    height: int
    region: Box | None
    heat: np.ndarray
    cells: np.ndarray
    image: Image.Image = field(repr=False, compare=False)


@dataclass(frozen=True)
class CellPair:
    """A query cell and a result cell, and the term of the score their features make."""

    query: tuple[int, int]  # (row, col) in the query's map
    result: tuple[int, int]
    share: float


@dataclass(frozen=True)
class Explanation:
    """Why ``result`` scored ``score`` for ``query``.

    ``score`` is the index's own (as ``lookalike search`` ranks); ``total`` is the sum of the
    decomposition (float network, whitening included), equal to ``score`` within rounding
    unless ``notes`` say why not. ``pairs`` float32 (query cells, result cells), row-major
    cells: each pair's term; ``pairs.sum() == total``.
    """

    score: float
    total: float
    query: Side
    result: Side
    pairs: np.ndarray
    model_id: str
    notes: tuple[str, ...] = ()

    def top_pairs(self, n: int = TOP_PAIRS) -> list[CellPair]:
        """The ``n`` cell pairs that add most to the score, strongest first."""
        cols_q, cols_r = self.query.heat.shape[1], self.result.heat.shape[1]
        order = np.argsort(self.pairs, axis=None)[::-1][:n]
        return [
            CellPair(divmod(int(q), cols_q), divmod(int(r), cols_r), float(self.pairs[q, r]))
            for q, r in zip(*np.unravel_index(order, self.pairs.shape), strict=True)
        ]

    def as_dict(self, pairs: int = TOP_PAIRS) -> dict[str, object]:
        """The JSON of ``lookalike explain --json`` and of the REST API."""
        return {
            "score": round(self.score, 6),
            "total": round(self.total, 6),
            "model_id": self.model_id,
            "notes": list(self.notes),
            "query": _side_dict(self.query),
            "result": _side_dict(self.result),
            "pairs": [
                {"query_cell": list(p.query), "result_cell": list(p.result), "share": _r(p.share)}
                for p in self.top_pairs(pairs)
            ],
        }


def explain_match(
    index: Index,
    query: int | str | Path | bytes,
    result: int | str | Path,
    region: Box | None = None,
) -> Explanation:
    """Explain the score of ``result`` (an indexed id or file) for ``query`` (an indexed id,
    an image file, or encoded image bytes), or for the ``region`` of the query image.

    The maps are computed from the images (not stored); the score is the index's, found by
    the same search as ``lookalike search`` restricted to the result. Raises LookalikeError
    for an id or file that is not indexed, ImageError for an image that cannot be decoded.
    """
    result_record = _indexed(index, result)
    query_record = None
    if isinstance(query, int):
        query_record = _indexed(index, query)
        source: str | bytes = query_record.path
    else:
        source = query if isinstance(query, bytes) else os.fspath(query)
    searched: Query = RegionQuery(source, region) if region else source
    hits = index.search(searched, k=1, filters=Filters(ids=frozenset({result_record.id})))
    if not hits:
        raise LookalikeError(f"image {result_record.id} is not searchable in this index")
    embedder = index.embedder
    network = float_network(embedder)
    seen = [
        query_image(searched, embedder.image_size),
        query_image(result_record.path, embedder.image_size),
    ]
    maps = network.maps(seen, indices=[])
    shown = [decode_image(s, max_side=DISPLAY_SIDE) for s in (source, result_record.path)]
    whitening = index.store.whitening()
    pairs = cell_pairs(network, maps.final[0], maps.final[1], whitening)
    total = float(pairs.sum(dtype=np.float64))
    grid = maps.final.shape[2:]  # both images fill the same network input
    label = "upload" if isinstance(source, bytes) else display_path(source)
    sides = [
        _side(label, query_record, region, pairs.sum(axis=1), shown[0], seen[0], network, grid),
        _side(
            display_path(result_record.path),
            result_record,
            None,
            pairs.sum(axis=0),
            shown[1],
            seen[1],
            network,
            grid,
        ),
    ]
    score = hits[0].score
    return Explanation(
        score,
        total,
        sides[0],
        sides[1],
        pairs,
        embedder.model_id,
        _notes(network, score, total, whitening),
    )


def _indexed(index: Index, image: int | str | Path | bytes) -> ImageRecord:
    if isinstance(image, int):
        record = index.record(image)
        if record is None or record.status != "ok":
            raise LookalikeError(f"no indexed image with id {image}")
        return record
    if isinstance(image, bytes):
        raise LookalikeError("the result must be an indexed image (an id or a file)")
    path = os.path.abspath(os.fspath(image))
    found = index.store.record_by_path(path)
    if found is None or found.status != "ok":
        raise LookalikeError(f"{display_path(path)} is not in the index")
    return found


def cell_pairs(
    network: FloatNetwork,
    query: np.ndarray,
    result: np.ndarray,
    whitening: Whitening | None = None,
) -> np.ndarray:
    """Two final maps, float32 (c, h, w) each -> float32 (query cells, result cells), each
    pair's term of the cosine of the two images' vectors as the index compares them (after
    ``whitening``, if given); the terms sum to that cosine."""
    q, r = (_comparable(network, m, whitening).astype(np.float64) for m in (query, result))
    norms = np.linalg.norm(q.sum(axis=0)) * np.linalg.norm(r.sum(axis=0))
    return ((q @ r.T) / max(float(norms), 1e-12)).astype(np.float32)


def _comparable(
    network: FloatNetwork, final: np.ndarray, whitening: Whitening | None
) -> np.ndarray:
    """The cells' shares of the vector the index compares: of the unit vector, or of the
    whitened one (``(x - mean) P``, the mean spread evenly over the cells)."""
    cells = network.cell_vectors(final)
    cells = cells / max(float(np.linalg.norm(cells.sum(axis=0))), 1e-12)
    if whitening is None:
        return cells
    whitened: np.ndarray = (cells - whitening.mean / len(cells)) @ whitening.projection
    return whitened


def _side(
    label: str,
    record: ImageRecord | None,
    region: Box | None,
    heat: np.ndarray,
    shown: DecodedImage,
    seen: Image.Image,
    network: FloatNetwork,
    grid: tuple[int, int],
) -> Side:
    width = shown.meta.width or shown.image.width
    height = shown.meta.height or shown.image.height
    return Side(
        label,
        record.id if record else None,
        width,
        height,
        region,
        heat.reshape(grid).astype(np.float32),
        _cell_boxes(network, seen, grid, region or Box(0, 0, width, height)),
        shown.image,
    )


def _cell_boxes(
    network: FloatNetwork, seen: Image.Image, shape: tuple[int, int], area: Box
) -> np.ndarray:
    """float32 (rows, cols, 4): the cells' boxes in original pixels, for the image the network
    saw (``seen``, a decoded and maybe downscaled copy of ``area`` of the original)."""
    rows, cols = shape
    geometry = network.preprocess.geometry(*seen.size)
    sx, sy = area.w / seen.width, area.h / seen.height
    boxes = np.zeros((rows, cols, 4), dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            left, top, right, bottom = geometry.cell_box(r, c, rows, cols)
            boxes[r, c] = (
                area.x + left * sx,
                area.y + top * sy,
                area.x + right * sx,
                area.y + bottom * sy,
            )
    return boxes


def _notes(
    network: FloatNetwork, score: float, total: float, whitening: Whitening | None
) -> tuple[str, ...]:
    notes = []
    if network.int8:
        notes.append(
            "the index's vectors come from the int8 network; the maps from the float network"
        )
    if network.scales != (1.0,):
        notes.append(f"the index averages scales {network.scales}; the maps are of scale 1")
    if network.pooling in ("gem", "mac"):
        notes.append(
            f"{network.pooling} pooling: each cell's heat is its share of the pooled value"
        )
    if whitening is not None:
        notes.append(f"scores are compared after the index's PCA-whitening ({whitening.dim} dims)")
    if abs(score - total) > AGREE:
        notes.append(f"the maps sum to {total:.4f}, the index scores {score:.4f}")
    return tuple(notes)


def _side_dict(side: Side) -> dict[str, object]:
    rows, cols = side.heat.shape
    return {
        "label": side.label,
        "id": side.image_id,
        "width": side.width,
        "height": side.height,
        "region": None
        if side.region is None
        else [side.region.x, side.region.y, side.region.w, side.region.h],
        "grid": [rows, cols],
        "heat": [[_r(v) for v in row] for row in side.heat.tolist()],
        "cells": [[[round(v, 1) for v in box] for box in row] for row in side.cells.tolist()],
    }


def _r(value: float) -> float:
    return float(f"{value:.6g}")
