"""The vector index at scale: an inverted-file base chosen by size, a delta replayed from the
catalogue, and merges only when they pay. The size limits are lowered so that a few thousand
vectors stand for a million."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.errors import LookalikeWarning
from lookalike.search.filters import Filters
from lookalike.store import LocalStore, ann, vectors
from lookalike.store.catalogue import Upsert
from lookalike.store.codec import CompactCodec
from lookalike.store.local import COMPACT_PAGE_SIZE
from lookalike.store.vectors import saved_generations

DIM = 32


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors in 40 clusters, like embeddings of photos of a few kinds of things."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, DIM))
    v = centres[rng.integers(0, 40, n)] + 0.5 * rng.normal(size=(n, DIM))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ann, "EXACT_LIMIT", 600)
    monkeypatch.setattr(vectors, "DELTA_LIMIT", 200)


def fill(store: LocalStore, data: np.ndarray, prefix: str = "p") -> None:
    with store.writing():
        store.write([Upsert(f"/{prefix}/{i}.jpg", 1, 1, v) for i, v in enumerate(data)])


@pytest.fixture
def large(tmp_path: Path, limits: None) -> tuple[LocalStore, np.ndarray]:
    store = LocalStore.create(tmp_path / "idx", "m", "m", DIM)
    data = clustered(2000)
    fill(store, data)
    return store, data


def exact_top(data: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(-(data @ query), kind="stable")[:k]]


def test_a_large_collection_is_searched_through_an_inverted_file_with_exact_scores(
    large: tuple[LocalStore, np.ndarray],
) -> None:
    store, data = large
    info = store.info()
    assert info.vector_index.startswith("ivf") and "nprobe=" in info.vector_index
    assert info.recall_at_10 is not None and info.recall_at_10 >= ann.TARGET_RECALL
    ranking = store.search(data[7:8], 5)[0]
    assert ranking[0][0].path == "/p/7.jpg"
    for record, score in ranking:  # re-scored with the stored vectors: exact cosines
        index = int(record.path.split("/")[-1][:-4])
        assert score == pytest.approx(float(data[index] @ data[7]), abs=1e-5)
    assert store.measure_recall(100) >= 0.9
    assert store.info().recall_at_10 is not None


def test_small_updates_stay_in_the_delta_and_are_searchable_exactly_at_once(
    large: tuple[LocalStore, np.ndarray], tmp_path: Path
) -> None:
    store, data = large
    (base,) = saved_generations(tmp_path / "idx")
    reader = LocalStore.open(tmp_path / "idx")
    assert len(reader.vectors) == 2000
    fresh = clustered(20, seed=1)
    with store.writing():
        store.write(
            [Upsert(f"/new/{i}.jpg", 1, 1, v) for i, v in enumerate(fresh)],
            removals=[f"/p/{i}.jpg" for i in range(50)],
        )
        store.write([Upsert("/p/60.jpg", 2, 2, fresh[0])])  # replaced: its old vector is gone
    assert saved_generations(tmp_path / "idx") == [base]  # no base rewritten for 70 changes
    for searcher in (reader, LocalStore.open(tmp_path / "idx")):
        assert len(searcher.vectors) == 1970
        (first, score), *_ = searcher.search(fresh[3:4], 3)[0]
        assert (first.path, round(score, 5)) == ("/new/3.jpg", 1.0)
        near_removed = searcher.search(data[:50], 10)
        assert not {r.path for row in near_removed for r, _ in row} & {
            f"/p/{i}.jpg" for i in range(50)
        }
        assert all(r.path != "/p/60.jpg" for r, _ in searcher.search(data[60:61], 10)[0])
    # Enough changes fold the delta into a new base, and the old one goes.
    fill(store, clustered(250, seed=2), prefix="more")
    (merged,) = saved_generations(tmp_path / "idx")
    assert merged > base
    assert reader.search(fresh[3:4], 1)[0][0][0].path == "/new/3.jpg"
    assert len(reader.vectors) == 2220


def test_filters_keep_their_results_on_an_inverted_file(
    large: tuple[LocalStore, np.ndarray],
) -> None:
    store, data = large
    with store.writing():
        store.write([], removals=["/p/1.jpg"])
    allowed = {r.id for r in store.iter_records("ok") if int(r.path.split("/")[-1][:-4]) % 10 == 1}
    ranking = store.search(data[11:12], 10, Filters(ids=frozenset(allowed)))[0]
    assert len(ranking) == 10 and {r.id for r, _ in ranking} <= allowed
    assert ranking[0][0].path == "/p/11.jpg"
    candidates = [i for i in range(1, 2000, 10) if i != 1]
    truth = [candidates[j] for j in exact_top(data[candidates], data[11], 10)]
    found = [int(r.path.split("/")[-1][:-4]) for r, _ in ranking]
    assert len(set(found) & set(truth)) >= 8


def test_the_kind_follows_the_size_both_ways(tmp_path: Path, limits: None) -> None:
    store = LocalStore.create(tmp_path / "idx", "m", "m", DIM)
    fill(store, clustered(500))
    assert store.info().vector_index == "flat"
    fill(store, clustered(500, seed=3), prefix="q")
    assert store.info().vector_index.startswith("ivf")
    with store.writing():
        store.write([], removals=[f"/p/{i}.jpg" for i in range(500)])
        store.write([], removals=[f"/q/{i}.jpg" for i in range(300)])
    assert store.info().vector_index == "flat"  # 200 left: below half the limit
    assert len(store.search(clustered(1, seed=9), 500)[0]) == 200


@pytest.mark.parametrize("damage", ["truncated", "zeroed block"])
def test_a_large_base_is_checked_by_samples_on_open(
    large: tuple[LocalStore, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
) -> None:
    store, data = large
    monkeypatch.setattr(vectors, "FULL_CHECK_BYTES", 0)  # every base counts as large
    fill(store, clustered(300, seed=4), prefix="r")  # saved with its sampled checksum
    (generation,) = saved_generations(tmp_path / "idx")
    path = tmp_path / "idx" / f"vectors-{generation}.faiss"
    with open(path, "r+b") as fh:
        if damage == "truncated":
            fh.truncate(path.stat().st_size - 1000)
        else:
            fh.write(bytes(vectors.SAMPLE_BLOCK_BYTES))
    reader = LocalStore.open(tmp_path / "idx")
    with pytest.warns(LookalikeWarning, match="rebuilding it from the catalogue"):
        assert reader.search(data[5:6], 1)[0][0][0].path == "/p/5.jpg"


def test_wanted_nlist_grows_with_the_square_root() -> None:
    assert ann.wanted_nlist(1000) == 64
    assert ann.wanted_nlist(1_000_000) == 2048
    assert ann.wanted_nlist(4_000_000) == 4096


def test_recall_leaves_each_query_itself_out() -> None:
    truth = np.array([[5, 1, 2], [6, 3, 4]])
    found = np.array([[5, 1, 9], [4, 6, 3]])
    assert ann.recall_at_k(found, truth, k=2, self_first=True) == 0.75
    assert ann.recall_at_k(found, truth, k=2) == 1.0  # the first columns count too


def test_compact_codes_keep_a_vector_in_808_bytes_close_to_itself() -> None:
    codec = CompactCodec()
    data = clustered(50)
    blobs = codec.encode(data)
    assert {len(b) for b in blobs} == {codec.blob_size(DIM)} == {8 + 4 * 5}
    decoded = codec.decode(blobs, DIM)
    assert np.allclose(np.linalg.norm(decoded, axis=1), 1.0, atol=1e-5)
    assert (decoded * data).sum(axis=1).min() > 0.99
    assert codec.blob_size(1280) == 808


def test_a_compact_store_keeps_small_vectors_and_searches_through_product_codes(
    tmp_path: Path, limits: None
) -> None:
    store = LocalStore.create(tmp_path / "idx", "m", "m", DIM, compact=True)
    data = clustered(2000)
    fill(store, data)
    info = store.info()
    assert info.compact and info.vector_index.startswith("ivf") and "pq8" in info.vector_index
    (first, score), *_ = store.search(data[7:8], 5)[0]
    assert first.path == "/p/7.jpg" and score == pytest.approx(1.0, abs=0.01)
    assert store.measure_recall(100) >= 0.85
    reopened = LocalStore.open(tmp_path / "idx")  # the codec is the index's, not the caller's
    assert reopened.compact and reopened.vector(first.id) is not None
    assert float(reopened.vector(first.id) @ data[7]) > 0.99  # type: ignore[operator]
    # its rows of 808 bytes fill large pages better than SQLite's default 4 KB ones
    page_size = reopened.catalogue.conn.execute("PRAGMA page_size").fetchone()[0]
    assert page_size == COMPACT_PAGE_SIZE > 4096
