"""Search filters: ``Filters.accepts`` on records, and ``Index.search(where=...)`` widening."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from lookalike.index import Index
from lookalike.present.web.query import Filters
from lookalike.store import ImageRecord


def record(
    path: str, width: int = 800, height: int = 600, taken_at: str | None = None
) -> ImageRecord:
    return ImageRecord(1, path, 1000, 0, "ok", None, width, height, "JPEG", taken_at)


def test_folder_filter_matches_whole_folder_names() -> None:
    keep = Filters(folder="/photos/2024/")
    assert keep.accepts(record("/photos/2024/a.jpg"))
    assert keep.accepts(record("/photos/2024/trip/b.jpg"))
    assert not keep.accepts(record("/photos/2024-old/c.jpg"))  # a prefix of the name only
    assert not keep.accepts(record("/other/d.jpg"))


def test_size_and_date_filters() -> None:
    keep = Filters(min_width=1000, min_height=500)
    assert keep.accepts(record("/a.jpg", 1000, 500))
    assert not keep.accepts(record("/a.jpg", 999, 800))
    may = Filters(taken_after=date(2024, 5, 1), taken_before=date(2024, 5, 31))
    assert may.accepts(record("/a.jpg", taken_at="2024-05-01T00:10:00"))
    assert may.accepts(record("/a.jpg", taken_at="2024-05-31T23:59:59"))  # the whole last day
    assert not may.accepts(record("/a.jpg", taken_at="2024-06-01T00:00:00"))
    assert not may.accepts(record("/a.jpg", taken_at=None))
    assert not Filters().active and may.active


def test_index_search_widens_until_k_images_pass_the_filter(
    built_index: Path, photo_library: Path
) -> None:
    rocket = str(photo_library / "rocket.jpg")
    with Index.open(built_index) as index:
        everything = index.search(rocket, k=8)
        # Keep only the least alike image: found although it ranks last, beyond 4 * k.
        last = everything[-1].path
        hits = index.search(rocket, k=1, where=lambda r: r.path == last)
        assert [h.path for h in hits] == [last]
        # Scores are the unfiltered ones, in the same order.
        kept = index.search(rocket, k=8, where=lambda r: r.path != rocket)
        assert [h.path for h in kept] == [h.path for h in everything if h.path != rocket]
        assert index.search(rocket, k=3, where=lambda r: False) == []


@pytest.mark.parametrize("k", [1, 3])
def test_search_many_applies_the_filter_to_every_query(
    built_index: Path, photo_library: Path, k: int
) -> None:
    queries = [str(photo_library / "coins.jpg"), str(photo_library / "moon.jpg")]
    with Index.open(built_index) as index:
        results = index.search_many(
            queries, k=k, exclude_self=True, where=lambda r: "o" in Path(r.path).stem
        )
    for query, result in zip(queries, results, strict=True):
        assert len(result.hits) == k
        assert all("o" in Path(h.path).stem and h.path != query for h in result.hits)
