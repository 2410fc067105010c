"""Duplicates of a whole store: candidate pairs from its own nearest-neighbour search, turned
and mirrored copies checked on the candidates only, complete-linkage groups, a keeper each."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from lookalike.decode.image import decode_image
from lookalike.dupes.bands import (
    DEFAULT_BAND,
    THRESHOLDS,
    Band,
    band_of,
    check_threshold,
    orientation_floor_for,
    threshold_of,
    thresholds_for,
)
from lookalike.dupes.grouping import Neighbours, Pairs, candidate_pairs, complete_linkage
from lookalike.dupes.keeper import KeeperRules, choose_keeper
from lookalike.dupes.orientation import best_transform, thumbnail
from lookalike.embed.interface import Embedder
from lookalike.errors import ImageError, LookalikeError
from lookalike.files.walk import is_under
from lookalike.search.orientation import inverse, transform_image
from lookalike.store import ImageRecord, Store, raw_cosines

NEIGHBOURS = 10  # nearest neighbours asked for per image: a group larger than this is rare
QUERY_BATCH = 1024  # stored vectors sent to the vector index per search call
SURELY_UPRIGHT = 0.985  # a pair scoring this much is the same way up (or symmetric)


@dataclass(frozen=True)
class Duplicate:
    """A copy of a group's keeper: ``score`` is their cosine (1.0 = same vector), ``transform``
    what turns the keeper into this copy (``lookalike.dupes.orientation``), None if nothing
    was turned or the orientation was not checked."""

    record: ImageRecord
    score: float
    band: Band
    transform: str | None = None

    @property
    def path(self) -> str:
        return self.record.path


@dataclass(frozen=True)
class DuplicateGroup:
    """Copies of one picture: the suggested keeper first, and why it was chosen."""

    keep: ImageRecord
    reason: str
    duplicates: list[Duplicate]

    @property
    def records(self) -> list[ImageRecord]:
        return [self.keep, *(d.record for d in self.duplicates)]

    @property
    def key(self) -> str:
        """Names the group by its members, whoever keeps: stable across rescans."""
        return "-".join(str(i) for i in sorted(r.id for r in self.records))

    @property
    def score(self) -> float:
        """The weakest pair with the keeper: every member is at least this alike."""
        return min(d.score for d in self.duplicates)


def resolve_threshold(
    band: str | None = None,
    threshold: float | None = None,
    thresholds: dict[Band, float] = THRESHOLDS,
) -> float:
    """The cosine score pairs need: ``threshold`` if given, else the lowest of ``band``
    among ``thresholds`` (the bands of the index's model: :func:`thresholds_for`)."""
    if band is not None and threshold is not None:
        raise LookalikeError("give a band or a threshold, not both")
    if threshold is not None:
        return check_threshold(threshold)
    return threshold_of(band or DEFAULT_BAND, thresholds)


class StoreSpace:
    """Neighbours from the store's own search; similarities always the model's own cosines,
    the ones the bands were measured on. A whitened index (``--whiten``, ``--centre``,
    ``lookalike adapt``) searches other cosines: adapted, the edited copies of 56 photos
    scored so much lower there that the ``similar`` band grouped 0.25 of their pairs instead
    of 0.83 (benchmarks/dupes.py), so its neighbours are scored again with the raw vectors."""

    def __init__(self, store: Store, k: int, exclude: Sequence[str] = ()) -> None:
        self.store = store
        self.k = k
        folders = [os.path.abspath(f) for f in exclude]
        self.excluded = np.fromiter(
            (r.id for r in store.iter_records("ok") if is_under(r.path, folders))
            if folders
            else (),
            np.int64,
        )
        self._whitened = store.whitened()
        self._vectors: dict[int, np.ndarray] = {}

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored (ids, raw vectors) but the excluded ones, in query batches."""
        for ids, vectors in self.store.iter_vectors():
            if len(self.excluded):
                keep = ~np.isin(ids, self.excluded)
                ids, vectors = ids[keep], vectors[keep]
            for start in range(0, len(ids), QUERY_BATCH):
                yield ids[start : start + QUERY_BATCH], vectors[start : start + QUERY_BATCH]

    def neighbours(self, ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The store's own search, the images themselves among the results."""
        rankings = self.store.search(vectors, self.k + 1)
        near = np.full((len(ids), self.k + 1), -1, np.int64)
        scores = np.full((len(ids), self.k + 1), -np.inf, np.float32)
        for row, ranking in enumerate(rankings):
            for col, (record, score) in enumerate(ranking):
                near[row, col], scores[row, col] = record.id, score
        if len(self.excluded):
            near[np.isin(near, self.excluded)] = -1
        if self._whitened:
            scores = raw_cosines(self.store, vectors, near)
        return near, scores

    def vector(self, image_id: int) -> np.ndarray:
        if image_id not in self._vectors:
            raw = self.store.vector(image_id)
            if raw is None:
                raise LookalikeError(f"image {image_id} left the index during the scan")
            self._vectors[image_id] = raw
        return self._vectors[image_id]

    def similarity(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        a = np.stack([self.vector(int(i)) for i in left])
        b = np.stack([self.vector(int(i)) for i in right])
        return np.asarray(a @ b.T, dtype=np.float32)


def find_duplicates(
    store: Store,
    band: str | None = None,
    threshold: float | None = None,
    orientations: bool = False,
    rules: KeeperRules | None = None,
    embedder: Callable[[], Embedder] | None = None,
    k: int = NEIGHBOURS,
    exclude: Sequence[str] = (),
) -> list[DuplicateGroup]:
    """Groups of duplicates among the store's images, largest first then by path.

    Every two members of a group score at least the threshold (``band``'s lowest score, or
    ``threshold``); pairs marked "not duplicates" never share a group. ``orientations``
    also finds turned and mirrored copies (decoding thumbnails of the candidate pairs and
    embedding the few that line up turned: ``embedder()`` loads the model then). Images
    under the ``exclude`` folders (where copies were moved, say) are left out. Bands are
    those of the store's model."""
    bands = thresholds_for(store.model_name)
    limit = resolve_threshold(band, threshold, bands)
    if k < 1:
        raise LookalikeError(f"k must be at least 1, got {k}")
    space = StoreSpace(store, k, exclude)
    floor = min(limit, orientation_floor_for(store.model_name)) if orientations else limit
    pairs = candidate_pairs(space.chunks(), space.neighbours, floor)
    if orientations and len(pairs):
        if embedder is None:
            raise LookalikeError("finding turned copies needs the index's model")
        pairs = orient_pairs(pairs, store, space, embedder)
    groups = complete_linkage(pairs, limit, space.similarity, store.not_duplicate_pairs())
    return describe_groups(groups, pairs, space, store, rules or KeeperRules(), bands)


def orient_pairs(
    pairs: Pairs, store: Store, space: StoreSpace, embedder: Callable[[], Embedder]
) -> Pairs:
    """``pairs`` with the turned or mirrored copies among them rescored: where a transform
    lines their thumbnails up, the first image is embedded turned that way and compared with
    the second's stored vector. Each image is decoded once, small."""
    records = store.records(sorted({int(i) for i in (*pairs.a, *pairs.b)}))
    thumbs: dict[int, np.ndarray | None] = {}

    def thumb(image_id: int) -> np.ndarray | None:
        if image_id not in thumbs:
            record = records.get(image_id)
            thumbs[image_id] = thumbnail(record.path) if record else None
        return thumbs[image_id]

    turned: list[tuple[int, str]] = []
    for at in np.flatnonzero(pairs.score < SURELY_UPRIGHT):
        a, b = int(pairs.a[at]), int(pairs.b[at])
        ta, tb = thumb(a), thumb(b)
        transform = best_transform(ta, tb) if ta is not None and tb is not None else None
        if transform is not None:
            turned.append((int(at), transform))
    if not turned:
        return pairs
    model = embedder()
    scores = pairs.score.copy()
    transforms = dict(pairs.transforms)
    for start in range(0, len(turned), 32):
        batch = turned[start : start + 32]
        images, kept = [], []
        for index, transform in batch:
            try:
                image = decode_image(records[int(pairs.a[index])].path, model.image_size).image
            except ImageError:
                continue
            images.append(transform_image(image, transform))
            kept.append((index, transform))
        if not images:
            continue
        vectors = model.embed(images)
        for vector, (index, transform) in zip(vectors, kept, strict=True):
            score = float(vector @ space.vector(int(pairs.b[index])))
            if score > scores[index]:
                scores[index] = score
                transforms[(int(pairs.a[index]), int(pairs.b[index]))] = transform
    return Pairs(pairs.a, pairs.b, scores, transforms)


def describe_groups(
    groups: Sequence[list[int]],
    pairs: Pairs,
    space: StoreSpace,
    store: Store,
    rules: KeeperRules,
    bands: dict[Band, float],
) -> list[DuplicateGroup]:
    """Each group with its keeper, and each copy's score, band and transform to the keeper."""
    known = pairs.known()
    records = store.records(sorted({i for group in groups for i in group}))
    described = []
    for group in groups:
        members = [records[i] for i in group if i in records]
        if len(members) < 2:
            continue  # removed meanwhile
        keep, reason = choose_keeper(members, rules)
        described.append(regroup(keep, reason, members, known, pairs.transforms, space, bands))
    described.sort(key=lambda g: (-len(g.duplicates) - 1, g.keep.path))
    return described


def regroup(
    keep: ImageRecord,
    reason: str,
    members: Sequence[ImageRecord],
    known: dict[tuple[int, int], float],
    transforms: dict[tuple[int, int], str],
    space: StoreSpace,
    bands: dict[Band, float],
) -> DuplicateGroup:
    """The group with ``keep`` as its keeper (a person may choose another)."""
    others = [m for m in members if m.id != keep.id]
    plain = space.similarity(np.asarray([keep.id]), np.asarray([m.id for m in others]))[0]
    turns = transforms_from(keep.id, [m.id for m in members], transforms)
    duplicates = []
    for record, score in zip(others, plain, strict=True):
        pair = (min(keep.id, record.id), max(keep.id, record.id))
        best = max(float(score), known.get(pair, -1.0))
        transform = turns.get(record.id)
        duplicates.append(
            Duplicate(record, round(best, 6), band_of(best, transform, bands), transform)
        )
    duplicates.sort(key=lambda d: (-d.score, d.path))
    return DuplicateGroup(keep, reason, duplicates)


def transforms_from(
    root: int, members: Sequence[int], transforms: dict[tuple[int, int], str]
) -> dict[int, str | None]:
    """What turns image ``root`` into each member: a pair's transform turns its smaller id
    into the larger; a pair matched as it is has none."""
    found: dict[int, str | None] = {}
    for other in members:
        step = transforms.get((min(root, other), max(root, other)))
        found[other] = inverse(step) if step is not None and root > other else step
    return found


__all__ = [
    "THRESHOLDS",
    "Duplicate",
    "DuplicateGroup",
    "Neighbours",
    "find_duplicates",
    "resolve_threshold",
]
