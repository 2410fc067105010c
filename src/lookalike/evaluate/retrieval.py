"""Evaluation runs through the real search path: a temporary index, then queries against it.

``evaluate_folder`` measures category retrieval on a labelled folder (every image queries all
the others). ``copy_detection`` measures near-duplicate search: edited copies of each photo
must find their original among the originals plus distractors.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.config import DEFAULT_MODEL
from lookalike.decode.image import decode_image
from lookalike.errors import ImageError
from lookalike.evaluate.datasets import DatasetError, load_labelled_folder
from lookalike.evaluate.edits import EDITS, apply_edit
from lookalike.evaluate.metrics import RetrievalReport, evaluate_ranking, recall_at_k
from lookalike.files.walk import walk_images
from lookalike.index import AddReport, Index, Progress
from lookalike.search.query import Query, SearchResult
from lookalike.train.adapt import adapt_index

# Hits fetched per query: enough for mAP@100, and for MAP@R up to R = 100.
MIN_DEPTH = 100
SEARCH_BATCH = 64


@dataclass(frozen=True)
class FolderEvaluation:
    """The report, and every query's ranking (for plots and inspection).

    ``paths[i]`` has ``labels[i]``; ``ranked[i]`` (k ids into ``paths``) are its hits, best
    first, itself excluded; ``skipped`` lists the files that could not be indexed.
    """

    report: RetrievalReport
    paths: list[str]
    labels: list[str]
    ranked: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def relevance(self) -> np.ndarray:
        """bool (n, k): hit j of query i has the query's label."""
        labels = np.asarray(self.labels, dtype=object)
        return np.asarray(labels[self.ranked] == labels[:, None], dtype=bool)

    @property
    def n_relevant(self) -> np.ndarray:
        """int (n,): R, the number of other images with the query's label."""
        _, inverse, counts = np.unique(self.labels, return_inverse=True, return_counts=True)
        return np.asarray(counts[inverse] - 1)


def evaluate_folder(
    root: Path | str,
    model: str = DEFAULT_MODEL,
    weights: Path | str | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    rerank: bool = True,
    centre: bool = False,
    adapt: bool | None = None,
) -> FolderEvaluation:
    """Index ``root`` (``<label>/<image>`` files) in a temporary index made by ``model``, then
    query every indexed image against all the others (``rerank``: as ``Index.search_many``;
    ``centre``: the index centres its vectors, ``Index.learn_whitening(centre_only=True)``;
    ``adapt``: it adapts to them, :func:`lookalike.train.adapt.adapt_index`; None: where a
    new index would, ``Index.add``; False: never)."""
    items = load_labelled_folder(root)
    label_of = {os.path.abspath(path): label for path, label in items}
    with temporary_index(model, weights) as index:
        added = _add(index, list(label_of), progress, workers, centre, adapt)
        skipped = {path for path, _ in added.skipped}
        paths = [path for path in label_of if path not in skipped]
        if len(paths) < 2:
            raise DatasetError(f"{root}: fewer than two images could be indexed")
        labels = [label_of[path] for path in paths]
        _, counts = np.unique(labels, return_counts=True)
        depth = min(max(MIN_DEPTH, int(counts.max()) - 1), len(paths) - 1)
        results = _search_all(index, list(paths), depth, exclude_self=True, rerank=rerank)
    id_of = {path: i for i, path in enumerate(paths)}
    ranked = np.full((len(paths), depth), -1, dtype=np.int64)
    for i, result in enumerate(results):
        if result.error or len(result.hits) < depth:
            raise DatasetError(f"{paths[i]}: {result.error or 'fewer hits than images indexed'}")
        ranked[i] = [id_of[hit.path] for hit in result.hits]
    report = evaluate_ranking(ranked, labels)
    return FolderEvaluation(report, paths, labels, ranked, sorted(added.skipped))


@dataclass(frozen=True)
class CopyDetectionReport:
    """recall@k per edit and over all edits; ``originals`` photos, ``distractors`` indexed
    images that are no query's original."""

    recall: dict[str, dict[int, float]]  # edit -> {k: recall@k}
    overall: dict[int, float]
    originals: int
    distractors: int
    queries: int

    def as_dict(self) -> dict[str, object]:
        return {
            "recall_at": {str(k): v for k, v in self.overall.items()},
            "per_edit": {e: {str(k): v for k, v in r.items()} for e, r in self.recall.items()},
            "originals": self.originals,
            "distractors": self.distractors,
            "queries": self.queries,
        }


def copy_detection(
    photos: Path | str,
    distractors: Path | str | None = None,
    model: str = DEFAULT_MODEL,
    weights: Path | str | None = None,
    edits: Sequence[str] = tuple(EDITS),
    ks: Sequence[int] = (1, 10),
    seed: int = 0,
    progress: Progress | None = None,
    workers: int | None = None,
    orientations: bool = False,
    rerank: bool = True,
    centre: bool = False,
    adapt: bool | None = None,
) -> CopyDetectionReport:
    """Index the photos under ``photos`` (and ``distractors``), then search each photo's
    edited copies (``lookalike.evaluate.edits``, fixed ``seed``); a query is found at k when
    its original is among the first k hits. ``orientations`` searches each copy in its eight
    orientations (``Index.search_many(..., orientations=True)``); ``centre`` centres the
    vectors on the mean of the indexed images, ``adapt`` adapts the index to them (None:
    where a new index would; queries are not part of either)."""
    unknown = sorted(set(edits) - set(EDITS))
    if unknown:
        raise DatasetError(f"unknown edit(s) {', '.join(unknown)}; choose from {', '.join(EDITS)}")
    originals = [entry.path for entry in walk_images([photos])]
    if not originals:
        raise DatasetError(f"{photos} holds no images")
    depth = max(ks)
    found: dict[str, list[list[bool]]] = {edit: [] for edit in edits}
    with temporary_index(model, weights) as index:
        roots = [photos] if distractors is None else [photos, distractors]
        added = _add(index, roots, progress, workers, centre, adapt)
        skipped = {path for path, _ in added.skipped}
        originals = [path for path in originals if path not in skipped]
        for original in originals:
            try:
                image = decode_image(original).image
            except ImageError:
                continue  # it was indexed, so it decoded; a file changed meanwhile is left out
            copies: list[Query] = [apply_edit(edit, image, seed) for edit in edits]
            results = index.search_many(copies, depth, orientations=orientations, rerank=rerank)
            for edit, result in zip(edits, results, strict=True):
                found[edit].append([hit.path == original for hit in result.hits])
        indexed = len(index)
    recall = {edit: {k: recall_at_k(rows, k) for k in ks} for edit, rows in found.items()}
    every = [row for rows in found.values() for row in rows]
    overall = {k: recall_at_k(every, k) for k in ks}
    return CopyDetectionReport(
        recall, overall, len(originals), indexed - len(originals), len(every)
    )


def _add(
    index: Index,
    paths: Sequence[str | Path],
    progress: Progress | None,
    workers: int | None,
    centre: bool,
    adapt: bool | None,
) -> AddReport:
    """Index ``paths``, then learn what a user asks of the index from its own images."""
    added = index.add(paths, progress=progress, workers=workers, adapt=adapt is None and not centre)
    if centre:
        index.learn_whitening(centre_only=True)
    if adapt:
        adapt_index(index)
    return added


@contextmanager
def temporary_index(model: str, weights: Path | str | None) -> Iterator[Index]:
    """A new index in a temporary folder, deleted on exit."""
    with (
        tempfile.TemporaryDirectory(prefix="lookalike-eval-") as tmp,
        Index.create(Path(tmp) / "index", model, weights) as index,
    ):
        yield index


def _search_all(
    index: Index, queries: list[Query], k: int, exclude_self: bool, rerank: bool
) -> list[SearchResult]:
    results: list[SearchResult] = []
    for start in range(0, len(queries), SEARCH_BATCH):
        batch = queries[start : start + SEARCH_BATCH]
        results += index.search_many(batch, k, exclude_self=exclude_self, rerank=rerank)
    return results
