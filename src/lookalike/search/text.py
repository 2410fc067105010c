"""Search by words, two ways behind one call (:func:`rank_text`).

* Built in, offline: the words name ImageNet classes (:mod:`lookalike.search.classes`), and
  each image scores the probability its stored classes give to them,
  ``sum_c weight(c) * p(c | image)`` over its top classes: about the chance that it shows
  what the words name (several named things add up: "dog and ball"). It needs no model
  load: the classes were stored at indexing time.
* A CLIP model (``--model clip:DIR``): the text encoder puts the words in the images'
  vector space, searched as an image query's vector is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from lookalike.embed.interface import Embedder
from lookalike.errors import LookalikeError
from lookalike.search.filters import Filters
from lookalike.search.query import Hit, SearchResult, TextQuery
from lookalike.store import Store


class TextSearchUnavailableError(LookalikeError):
    """The index's model can neither classify images nor embed text."""


def text_search(model_name: str) -> str | None:
    """How an index of ``model_name`` is searched by words: "clip", "classes", or None."""
    from lookalike.embed.clip import is_clip
    from lookalike.embed.registry import model_classifies

    if is_clip(model_name):
        return "clip"
    return "classes" if model_classifies(model_name) else None


def rank_text(
    store: Store,
    embedder: Callable[[], Embedder],
    queries: Sequence[TextQuery],
    k: int,
    filters: Filters | None = None,
) -> list[SearchResult]:
    """The ``k`` best hits per text query among the images ``filters`` keeps, best first.
    Where the index cannot be searched by words, each query gets that error."""
    kind = text_search(store.model_name)
    if kind == "clip":
        return _rank_clip(store, embedder, queries, k, filters)
    if kind == "classes":
        return _rank_classes(store, queries, k, filters)
    error = TextSearchUnavailableError(
        f"this index's model ({store.model_name}) cannot search by words: that needs a model "
        "with ImageNet's classifier (mobilenet_v2, efficientnet_lite0/1/2) or a CLIP model "
        "(--model clip:DIR) when the index is made"
    )
    return [SearchResult(q, [], str(error), error) for q in queries]


def _rank_classes(
    store: Store, queries: Sequence[TextQuery], k: int, filters: Filters | None
) -> list[SearchResult]:
    from lookalike.search.classes import match_text

    table = store.class_table(filters)
    if not len(table.ids) and store.unclassified_paths():
        error = TextSearchUnavailableError(
            f"no image of index {store.location} has classes yet (it was made before search "
            "by words): run 'lookalike index' on its folders once more to add them"
        )
        return [SearchResult(q, [], str(error), error) for q in queries]
    results = []
    for query in queries:
        matched = match_text(query.text)
        scores = (matched.weights()[table.classes] * table.probs).sum(axis=1)
        best = np.argsort(-scores, kind="stable")[:k]  # ties: in id order
        records = store.records([int(table.ids[i]) for i in best])
        hits = [
            Hit.of(r, scores[i]) for i in best if (r := records.get(int(table.ids[i]))) is not None
        ]
        results.append(SearchResult(query, hits, matched=matched))
    return results


def _rank_clip(
    store: Store,
    embedder: Callable[[], Embedder],
    queries: Sequence[TextQuery],
    k: int,
    filters: Filters | None,
) -> list[SearchResult]:
    from lookalike.embed.clip import ClipEmbedder

    model = embedder()
    assert isinstance(model, ClipEmbedder)  # an index's model is what made its vectors
    rankings = store.search(model.embed_text([q.text for q in queries]), k, filters)
    return [
        SearchResult(q, [Hit.of(r, score) for r, score in ranking])
        for q, ranking in zip(queries, rankings, strict=True)
    ]
