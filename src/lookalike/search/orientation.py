"""The eight ways a picture can be turned or mirrored (the dihedral group), and search that
finds turned and mirrored copies by embedding each query in all eight orientations.

A transform is named by what it does to the original to give the copy: ``rot90`` turns it
90 degrees anticlockwise (as PIL's ``Transpose.ROTATE_90`` and ``numpy.rot90``), ``flip``
mirrors it left to right, ``flip_rot90`` mirrors then turns. ``None`` is the picture as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from lookalike.embed.interface import Embedder
from lookalike.errors import LookalikeError
from lookalike.search.filters import Filters
from lookalike.search.query import Hit, Query, SearchResult, TextQuery, query_image
from lookalike.store.base import Store

TRANSFORMS: tuple[str, ...] = (
    "rot90",
    "rot180",
    "rot270",
    "flip",
    "flip_rot90",
    "flip_rot180",
    "flip_rot270",
)


def _parts(name: str | None) -> tuple[bool, int]:
    """(mirrored first, quarter turns anticlockwise)."""
    if name is None:
        return False, 0
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}")
    flipped = name.startswith("flip")
    turn = name.removeprefix("flip").removeprefix("_")
    return flipped, int(turn.removeprefix("rot")) // 90 if turn else 0


def transform_array(array: np.ndarray, name: str | None) -> np.ndarray:
    """``array`` (H, W[, C]) turned or mirrored as ``name`` says."""
    flipped, turns = _parts(name)
    out = np.fliplr(array) if flipped else array
    return np.rot90(out, turns)


def transform_image(image: Image.Image, name: str | None) -> Image.Image:
    """``image`` turned or mirrored as ``name`` says (lossless)."""
    flipped, turns = _parts(name)
    out = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flipped else image
    rotations = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180}
    if turns == 3:
        return out.transpose(Image.Transpose.ROTATE_270)
    return out.transpose(rotations[turns]) if turns else out


# Each transform as what it does to a small array of distinct numbers: composing and
# inverting transforms is then looking the result up.
_PROBE = np.arange(6).reshape(2, 3)
_BY_RESULT = {
    transform_array(_PROBE, t).tobytes() + bytes(transform_array(_PROBE, t).shape): t
    for t in (None, *TRANSFORMS)
}


def _lookup(array: np.ndarray) -> str | None:
    return _BY_RESULT[np.ascontiguousarray(array).tobytes() + bytes(array.shape)]


def compose(first: str | None, then: str | None) -> str | None:
    """The one transform that does ``first`` and then ``then``."""
    return _lookup(transform_array(transform_array(_PROBE, first), then))


def inverse(name: str | None) -> str | None:
    """The transform that undoes ``name``."""
    return next(t for t in (None, *TRANSFORMS) if compose(name, t) is None)


def all_orientations(image: Image.Image) -> Sequence[tuple[str | None, Image.Image]]:
    """The image in each of its eight orientations, as it is first."""
    return [(t, transform_image(image, t)) for t in (None, *TRANSFORMS)]


# Any other view (a turned orientation, the centre) must beat the image as it is by this
# much: more tries give an unrelated image more chances, and this keeps them from outranking
# an upright match (measured: rotate_10 copies lost one more original without it, turned
# copies none with it).
TURNED_MARGIN = 0.02


# The query's central part (this share of each side) is searched too, as it is: a copy in
# a frame, or turned a few degrees with dark corners, matches by its middle (measured with
# 1,981 photo distractors: the misses of rotate_10 and border went from 3 to 0).
CENTRE_SHARE = 0.8


def centre_view(image: Image.Image) -> Image.Image:
    """The middle ``CENTRE_SHARE`` of each side of ``image``."""
    w, h = image.size
    cw, ch = max(1, round(w * CENTRE_SHARE)), max(1, round(h * CENTRE_SHARE))
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def rank_oriented(
    store: Store,
    embedder: Callable[[], Embedder],
    queries: Sequence[Query],
    k: int,
    exclude_self: bool = False,
    filters: Filters | None = None,
) -> list[SearchResult]:
    """Like :func:`lookalike.search.ranking.rank`, each image query embedded in its eight
    orientations and its centre (nine forward passes): a hit scores its best view (a turned
    one or the centre ranks ``TURNED_MARGIN`` lower), and its ``transform`` says what turns
    the hit into the query (None: as it is)."""
    from lookalike.search.ranking import indexed_record, model_scored  # (imports the store)

    if k < 1:
        raise LookalikeError(f"k must be at least 1, got {k}")
    model = embedder()
    whitened = store.whitened()  # then ranked by the whitened cosine, scored by the model's
    results: list[SearchResult] = []
    for query in queries:
        if isinstance(query, TextQuery):
            error = LookalikeError("orientations apply to image queries, not to words")
            results.append(SearchResult(query, [], str(error), error))
            continue
        try:
            image = query_image(query, model.image_size)
        except LookalikeError as exc:
            results.append(SearchResult(query, [], str(exc), exc))
            continue
        turned = all_orientations(image)
        views = [*turned, (None, centre_view(image))]
        vectors = model.embed([picture for _, picture in views])
        record = indexed_record(store, query)
        rankings = store.search(vectors, k + 1 if exclude_self else k, filters)
        scored = rankings
        if whitened:
            scored = [model_scored(store, v, r) for v, r in zip(vectors, rankings, strict=True)]
        best: dict[int, tuple[float, Hit]] = {}
        for view, ((transform, _), ranking, model_ranking) in enumerate(
            zip(views, rankings, scored, strict=True)
        ):
            for (found, score), (_, model_score) in zip(ranking, model_ranking, strict=True):
                if exclude_self and record is not None and found.id == record.id:
                    continue
                rank_by = score - (TURNED_MARGIN if view else 0.0)  # view 0: as it is
                if found.id not in best or rank_by > best[found.id][0]:
                    hit = Hit.of(found, model_score)
                    turned_hit = Hit(
                        hit.path, hit.score, hit.id, hit.width, hit.height, inverse(transform)
                    )
                    best[found.id] = (rank_by, turned_hit)
        ranked = sorted(best.values(), key=lambda pair: (-pair[0], pair[1].id))
        hits = [hit for _, hit in ranked[:k]]
        results.append(SearchResult(query, hits))
    return results
