"""Queries to ranked hits over a store: stored vectors reused, the rest embedded in one batch."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from lookalike.embed.interface import Embedder, LocalFeatureEmbedder
from lookalike.embed.local_features import LocalFeatures
from lookalike.errors import LookalikeError
from lookalike.search.filters import Filters
from lookalike.search.query import (
    Hit,
    Query,
    SearchResult,
    TextQuery,
    query_image,
    query_path,
)
from lookalike.search.spatial import SHORTLIST
from lookalike.search.spatial import rerank as spatial_rerank
from lookalike.store import ImageRecord, Ranking, Store, raw_cosines


def rank(
    store: Store,
    embedder: Callable[[], Embedder],
    queries: Sequence[Query],
    k: int,
    exclude_self: bool = False,
    filters: Filters | None = None,
    rerank: bool = True,
) -> list[SearchResult]:
    """The ``k`` best hits per query among the images ``filters`` keeps, best first.

    A query that is an indexed, unchanged file reuses its stored vector (so it finds itself
    with score 1.0); the others are decoded and embedded together, loading the model
    (``embedder()``) only then. A bad query gets its one-line error, not an exception.
    Text queries are ranked by :func:`lookalike.search.text.rank_text`, in the same call.

    With ``rerank`` and local features stored, the first ``spatial.SHORTLIST`` hits are
    re-ordered by spatial verification (:mod:`lookalike.search.spatial`). A hit's ``score``
    is always the model's cosine similarity, also where a whitening (``--whiten``,
    ``--centre``, ``lookalike adapt``) ranks the hits.
    """
    if k < 1:
        raise LookalikeError(f"k must be at least 1, got {k}")
    texts = [(i, q) for i, q in enumerate(queries) if isinstance(q, TextQuery)]
    answered_texts: dict[int, SearchResult] = {}
    if texts:
        from lookalike.search.text import rank_text

        text_results = rank_text(store, embedder, [q for _, q in texts], k, filters)
        answered_texts = {i: r for (i, _), r in zip(texts, text_results, strict=True)}
    vectors: list[np.ndarray | None] = [None] * len(queries)
    self_ids: list[int | None] = [None] * len(queries)
    errors: list[LookalikeError | None] = [None] * len(queries)
    local: list[LocalFeatures | None] = [None] * len(queries)
    images = []
    for i, query in enumerate(queries):
        if i in answered_texts:
            continue
        record = indexed_record(store, query)
        if record is not None:
            self_ids[i] = record.id
            if _unchanged(record):
                vectors[i] = store.vector(record.id)
                if rerank:
                    local[i] = store.local_features([record.id]).get(record.id)
        if vectors[i] is not None:
            continue
        try:
            images.append((i, query_image(query, embedder().image_size)))
        except LookalikeError as exc:
            errors[i] = exc
    if images:
        embedded, found_local = _embed(embedder(), [image for _, image in images], rerank)
        for (i, _), vector, features in zip(images, embedded, found_local, strict=True):
            vectors[i], local[i] = vector, features
    answered = [i for i, v in enumerate(vectors) if v is not None]
    hits: dict[int, list[Hit]] = {}
    if answered:
        matrix = np.stack([v for v in vectors if v is not None])
        depth = k + 1 if exclude_self else k
        if rerank and any(local[i] is not None for i in answered):
            depth = max(depth, SHORTLIST + (1 if exclude_self else 0))
        rankings = store.search(matrix, depth, filters)
        whitened = store.whitened()
        for i, vector, ranking in zip(answered, matrix, rankings, strict=True):
            if exclude_self:
                ranking = [(r, score) for r, score in ranking if r.id != self_ids[i]]
            features = local[i]
            if features is not None:
                ranking = _verified(store, features, ranking)
            ranking = ranking[:k]
            if whitened:
                ranking = model_scored(store, vector, ranking)
            hits[i] = [Hit.of(record, score) for record, score in ranking]
    return [
        answered_texts.get(i)
        or SearchResult(q, hits.get(i, []), str(e) if (e := errors[i]) else None, e)
        for i, q in enumerate(queries)
    ]


def _embed(
    embedder: Embedder, images: list[Image.Image], local: bool
) -> tuple[np.ndarray, list[LocalFeatures | None]]:
    """Query vectors, and their local features where asked for and the model has them."""
    if local and isinstance(embedder, LocalFeatureEmbedder) and embedder.has_local_features:
        vectors, _, features = embedder.embed_with_local_features(images)
        return vectors, list(features)
    return embedder.embed(images), [None] * len(images)


def model_scored(store: Store, query: np.ndarray, ranking: Ranking) -> Ranking:
    """The ranking in its order, each hit scored with the model's own cosine (its raw
    vector's with the raw ``query`` float32 (dim,)) instead of the whitened one it was
    ranked by: a score keeps its meaning when an index learns a whitening or adapts again."""
    ids = np.array([[record.id for record, _ in ranking]], np.int64)
    scores = raw_cosines(store, query[None, :], ids)[0]
    return [(record, float(s)) for (record, _), s in zip(ranking, scores, strict=True)]


def _verified(store: Store, query: LocalFeatures, ranking: Ranking) -> Ranking:
    """The ranking with its first SHORTLIST hits re-ordered by spatial verification."""
    head = ranking[:SHORTLIST]
    stored = store.local_features([record.id for record, _ in head])
    if not stored:
        return ranking  # an index made without local features
    order = spatial_rerank(
        np.array([score for _, score in head]), query, [stored.get(r.id) for r, _ in head]
    )
    return [head[j] for j in order] + ranking[SHORTLIST:]


def indexed_record(store: Store, query: Query) -> ImageRecord | None:
    """The record of a query given as an indexed file's path, else None."""
    path = query_path(query)
    record = store.record_by_path(path) if path else None
    return record if record and record.status == "ok" else None


def _unchanged(record: ImageRecord) -> bool:
    try:
        st = os.stat(record.path)
    except OSError:
        return True  # vanished since indexing: its stored vector is still what was indexed
    return (st.st_size, st.st_mtime_ns) == (record.size, record.mtime_ns)
