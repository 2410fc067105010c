"""Search filters: ``Filters.accepts`` on records, and the same filters pushed into a search."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from lookalike.decode.image import ImageMeta
from lookalike.index import Index
from lookalike.search.filters import Filters
from lookalike.store import ImageRecord, LocalStore, Upsert


def record(
    path: str, width: int = 800, height: int = 600, taken_at: str | None = None
) -> ImageRecord:
    return ImageRecord(
        id=1,
        path=path,
        size=1000,
        mtime_ns=0,
        status="ok",
        width=width,
        height=height,
        format="JPEG",
        taken_at=taken_at,
    )


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


def test_index_search_finds_k_images_that_pass_however_narrow_the_filter(
    built_index: Path, photo_library: Path
) -> None:
    rocket = str(photo_library / "rocket.jpg")
    with Index.open(built_index) as index:
        everything = index.search(rocket, k=8)
        # Keep only the least alike image: found although it ranks last.
        last = everything[-1]
        hits = index.search(rocket, k=1, filters=Filters(ids=frozenset({last.id})))
        assert [h.path for h in hits] == [last.path]
        # Scores are the unfiltered ones, in the same order.
        others = frozenset(h.id for h in everything if h.path != rocket)
        kept = index.search(rocket, k=8, filters=Filters(ids=others))
        assert [(h.path, h.score) for h in kept] == [
            (h.path, h.score) for h in everything if h.path != rocket
        ]
        assert index.search(rocket, k=3, filters=Filters(ids=frozenset())) == []
        assert index.search(rocket, k=3, filters=Filters(folder="/nowhere")) == []


@pytest.mark.parametrize("k", [1, 3])
def test_search_many_applies_the_filter_to_every_query(
    built_index: Path, photo_library: Path, k: int
) -> None:
    queries = [str(photo_library / "coins.jpg"), str(photo_library / "moon.jpg")]
    with Index.open(built_index) as index:
        with_o = frozenset(r.id for r in index.records() if "o" in Path(r.path).stem)
        results = index.search_many(queries, k=k, exclude_self=True, filters=Filters(ids=with_o))
    for query, result in zip(queries, results, strict=True):
        assert len(result.hits) == k
        assert all("o" in Path(h.path).stem and h.path != query for h in result.hits)


def test_the_store_pushes_down_exactly_what_accepts_means(tmp_path: Path) -> None:
    """The catalogue's SQL and FAISS's id selector agree with ``Filters.accepts``, over many
    seeded records and filters: the top k of those that pass, in exact score order."""
    rng = np.random.default_rng(7)
    folders = ["/p/2024", "/p/2024-old", "/p/2024/trip", "/q"]
    upserts = []
    for i in range(200):
        vector = rng.normal(size=16).astype(np.float32)
        day = None if i % 7 == 0 else f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T12:00:00"
        meta = ImageMeta(
            width=int(rng.integers(100, 3000)),
            height=int(rng.integers(100, 3000)),
            format="JPEG",
            taken_at=day,
        )
        path = f"{folders[i % 4]}/{i}.jpg"
        upserts.append(Upsert(path, 1, 1, vector / np.linalg.norm(vector), meta=meta))
    store = LocalStore.create(tmp_path / "idx", "m", "m", 16)
    with store.writing():
        store.write(upserts)
    records = list(store.iter_records("ok"))
    cases = [
        Filters(folder="/p/2024"),
        Filters(folder="/p/2024/"),
        Filters(min_width=1500, min_height=800),
        Filters(taken_after=date(2024, 3, 1), taken_before=date(2024, 6, 30)),
        Filters(folder="/q", taken_after=date(2024, 10, 1)),
        Filters(ids=frozenset(range(0, 300, 3)), min_width=1000),
    ]
    query = rng.normal(size=(1, 16)).astype(np.float32)
    everything = store.search(query, len(records))[0]
    for filters in cases:
        expected = [(r.path, s) for r, s in everything if filters.accepts(r)][:10]
        got = [(r.path, s) for r, s in store.search(query, 10, filters)[0]]
        assert got == expected and expected, filters
    store.close()
