"""Queries to ranked hits over a store: stored vectors reused, the rest embedded in one batch."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from lookalike.embed.interface import Embedder
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
from lookalike.store import ImageRecord, Store


def rank(
    store: Store,
    embedder: Callable[[], Embedder],
    queries: Sequence[Query],
    k: int,
    exclude_self: bool = False,
    filters: Filters | None = None,
) -> list[SearchResult]:
    """The ``k`` best hits per query among the images ``filters`` keeps, best first.

    A query that is an indexed, unchanged file reuses its stored vector (so it finds itself
    with score 1.0); the others are decoded and embedded together, loading the model
    (``embedder()``) only then. A bad query gets its one-line error, not an exception.
    Text queries are ranked by :func:`lookalike.search.text.rank_text`, in the same call.
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
    images = []
    for i, query in enumerate(queries):
        if i in answered_texts:
            continue
        record = indexed_record(store, query)
        if record is not None:
            self_ids[i] = record.id
            if _unchanged(record):
                vectors[i] = store.vector(record.id)
        if vectors[i] is not None:
            continue
        try:
            images.append((i, query_image(query, embedder().image_size)))
        except LookalikeError as exc:
            errors[i] = exc
    if images:
        embedded = embedder().embed([image for _, image in images])
        for (i, _), vector in zip(images, embedded, strict=True):
            vectors[i] = vector
    answered = [i for i, v in enumerate(vectors) if v is not None]
    hits: dict[int, list[Hit]] = {}
    if answered:
        matrix = np.stack([v for v in vectors if v is not None])
        rankings = store.search(matrix, k + 1 if exclude_self else k, filters)
        for i, ranking in zip(answered, rankings, strict=True):
            found = [Hit.of(record, score) for record, score in ranking]
            if exclude_self:
                found = [h for h in found if h.id != self_ids[i]]
            hits[i] = found[:k]
    return [
        answered_texts.get(i)
        or SearchResult(q, hits.get(i, []), str(e) if (e := errors[i]) else None, e)
        for i, q in enumerate(queries)
    ]


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
