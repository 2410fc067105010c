"""Duplicates of a whitened or adapted index are judged by the model's own cosines, the ones
the bands were measured on, not by the cosines its search uses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lookalike.dupes.find import find_duplicates
from lookalike.index import Index
from lookalike.train.adapt import adapt_index


def grouped(index: Index) -> list[tuple[str, tuple[str, ...], tuple[float, ...]]]:
    return [
        (
            Path(g.keep.path).name,
            tuple(sorted(Path(d.path).name for d in g.duplicates)),
            tuple(round(d.score, 4) for d in sorted(g.duplicates, key=lambda d: d.path)),
        )
        for g in find_duplicates(index.store, "similar")
    ]


@pytest.mark.parametrize("learn", ["adapt", "whiten", "centre"])
def test_whitening_changes_the_search_not_the_duplicates(
    collection_index: Path, tmp_path: Path, learn: str
) -> None:
    with Index.open(collection_index) as index:
        plain = grouped(index)
    assert plain  # the collection holds six copies of three photos
    directory = Path(shutil.copytree(collection_index, tmp_path / "index"))
    with Index.open(directory) as index:
        if learn == "adapt":
            adapt_index(index, views=2)
        else:
            index.learn_whitening(centre_only=learn == "centre")
        assert index.store.whitening() is not None
        assert grouped(index) == plain
