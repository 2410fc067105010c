"""The embedded store on its own: vectors here are unit vectors, the store's only input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lookalike.decode.image import ImageMeta
from lookalike.embed.local_features import local_features
from lookalike.errors import IndexLockedError, IndexNotFoundError, LookalikeError
from lookalike.store import LocalStore
from lookalike.store.catalogue import Upsert
from lookalike.store.vectors import saved_generations
from lookalike.store.whitening import learn_whitening

DIM = 8


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def upsert(path: str, seed: int, size: int = 100, mtime: int = 1) -> Upsert:
    return Upsert(path, size, mtime, unit(seed), meta=ImageMeta(width=10, height=20, format="JPEG"))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore.create(tmp_path / "idx", "test-model", "test-model-v1", DIM)


def test_create_then_open_keeps_model_and_rejects_a_second_create(
    tmp_path: Path, store: LocalStore
) -> None:
    store.close()
    reopened = LocalStore.open(tmp_path / "idx")
    assert (reopened.model_name, reopened.model_id, reopened.dim) == (
        "test-model",
        "test-model-v1",
        DIM,
    )
    with pytest.raises(LookalikeError, match="already exists"):
        LocalStore.create(tmp_path / "idx", "other", "other", DIM)
    with pytest.raises(IndexNotFoundError):
        LocalStore.open(tmp_path / "nothing")


def test_writes_need_the_lock_and_each_commit_bumps_the_generation(store: LocalStore) -> None:
    with pytest.raises(RuntimeError):
        store.write([upsert("/a.jpg", 1)])
    with store.writing():
        g1 = store.write([upsert("/a.jpg", 1), upsert("/b.jpg", 2)])
        g2 = store.write([upsert("/c.jpg", 3)])
    assert (g1, g2) == (1, 2) and store.count() == 3


def test_search_finds_each_vector_first_with_score_one(store: LocalStore) -> None:
    with store.writing():
        store.write([upsert(f"/{i}.jpg", i) for i in range(10)])
    results = store.search(np.stack([unit(3), unit(7)]), k=3)
    assert [r[0][0].path for r in results] == ["/3.jpg", "/7.jpg"]
    assert results[0][0][1] == pytest.approx(1.0, abs=1e-5)
    assert results[0][0][0].width == 10 and len(results[0]) == 3


def test_update_keeps_the_id_and_replaces_the_vector(store: LocalStore) -> None:
    with store.writing():
        store.write([upsert("/a.jpg", 1)])
        first = store.record_by_path("/a.jpg")
        store.write([upsert("/a.jpg", 2, size=200)])
    second = store.record_by_path("/a.jpg")
    assert first and second and first.id == second.id and second.size == 200
    assert store.search(unit(2)[None], k=1)[0][0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(store.vectors) == 1


def test_removed_ids_are_never_reused(store: LocalStore) -> None:
    with store.writing():
        store.write([upsert("/a.jpg", 1), upsert("/b.jpg", 2)])
        store.write([], ["/b.jpg"])
        store.write([upsert("/c.jpg", 3)])
    ids = {r.path: r.id for r in store.iter_records()}
    assert ids == {"/a.jpg": 1, "/c.jpg": 3}
    assert store.search(unit(2)[None], k=5)[0][0][0].path != "/b.jpg"


def test_skipped_files_are_recorded_without_vectors(store: LocalStore) -> None:
    with store.writing():
        store.write([upsert("/a.jpg", 1), Upsert("/bad.jpg", 5, 1, None, reason="not an image")])
    assert store.count() == 1
    skipped = list(store.iter_records("skipped"))
    assert [(r.path, r.reason) for r in skipped] == [("/bad.jpg", "not an image")]
    assert len(store.vectors) == 1


def test_a_reader_catches_up_with_another_writers_commits(
    tmp_path: Path, store: LocalStore
) -> None:
    reader = LocalStore.open(tmp_path / "idx")
    with store.writing():
        store.write([upsert("/a.jpg", 1), upsert("/b.jpg", 2)])
    assert len(reader.vectors) == 2
    with store.writing():
        store.write([upsert("/c.jpg", 3)], ["/a.jpg"])
    assert reader.search(unit(3)[None], k=5)[0][0][0].path == "/c.jpg"
    assert {r.path for r, _ in reader.search(unit(1)[None], k=5)[0]} == {"/b.jpg", "/c.jpg"}


def test_vector_file_is_saved_at_the_generation_and_reloaded(
    tmp_path: Path, store: LocalStore
) -> None:
    with store.writing():
        store.write([upsert(f"/{i}.jpg", i) for i in range(5)])
    assert saved_generations(tmp_path / "idx") == [1]
    store.close()
    reopened = LocalStore.open(tmp_path / "idx")
    assert reopened.vectors.generation == 1 and len(reopened.vectors) == 5


def test_stale_vector_file_is_replayed_from_the_catalogue(
    tmp_path: Path, store: LocalStore
) -> None:
    """As after a crash: commits exist that no vector file has seen."""
    with store.writing():
        store.write([upsert(f"/{i}.jpg", i) for i in range(5)])  # saved at generation 1
    # a writer killed after its commit and before saving: the catalogue moves on, the file not
    store.catalogue.apply([upsert("/new.jpg", 50)], ["/0.jpg"], store.model_id)
    assert saved_generations(tmp_path / "idx") == [1]
    fresh = LocalStore.open(tmp_path / "idx")
    assert len(fresh.vectors) == 5 and fresh.vectors.generation == 2
    assert fresh.search(unit(50)[None], k=1)[0][0][0].path == "/new.jpg"


def test_a_reader_older_than_the_removal_log_rebuilds(tmp_path: Path, store: LocalStore) -> None:
    with store.writing():
        store.write([upsert("/a.jpg", 1), upsert("/b.jpg", 2)])
    reader = LocalStore.open(tmp_path / "idx")
    assert len(reader.vectors) == 2  # reader now at generation 1
    with store.writing():
        store.write([], ["/a.jpg"])
    with store.writing():  # the removal is pruned from the log once saved
        store.write([upsert("/c.jpg", 3)])
    assert {r.path for r, _ in reader.search(unit(1)[None], k=5)[0]} == {"/b.jpg", "/c.jpg"}


def test_second_writer_is_refused_with_the_holders_pid(tmp_path: Path, store: LocalStore) -> None:
    other = LocalStore.open(tmp_path / "idx")
    with store.writing():
        with pytest.raises(IndexLockedError, match=r"locked by PID \d+"), other.writing():
            pass
        # readers are not blocked by the writer
        assert other.count() == 0
    with other.writing():  # released once the first writer is done
        other.write([upsert("/a.jpg", 1)])
    assert store.count() == 1


def test_whitening_applies_to_stored_vectors_and_queries_in_every_reader(
    tmp_path: Path, store: LocalStore
) -> None:
    with store.writing():
        store.write([upsert(f"/{i}.jpg", i) for i in range(20)])
    reader = LocalStore.open(tmp_path / "idx")
    assert len(reader.vectors) == 20 and reader.vectors.whitening is None
    whitening = learn_whitening(store.all_vectors(), dims=4)
    with store.writing():
        store.set_whitening(whitening)
    for view in (store, reader, LocalStore.open(tmp_path / "idx")):
        assert view.vectors.dim == 4 and len(view.vectors) == 20
        (best, score), *_ = view.search(unit(7)[None], k=3)[0]
        assert best.path == "/7.jpg" and score == pytest.approx(1.0, abs=1e-4)
    expected = whitening.apply(unit(7)[None]) @ whitening.apply(unit(8)[None]).T
    pair = {r.path: s for r, s in reader.search(unit(7)[None], k=20)[0]}
    assert pair["/8.jpg"] == pytest.approx(float(expected[0, 0]), abs=1e-4)
    with store.writing():  # files added later are whitened too; dropping it restores raw search
        store.write([upsert("/late.jpg", 99)])
        assert reader.search(unit(99)[None], k=1)[0][0][0].path == "/late.jpg"
        store.set_whitening(None)
    assert reader.vectors.dim == DIM and len(reader.vectors) == 21


def test_a_new_whitening_comes_with_its_base_so_readers_never_replay_the_collection(
    tmp_path: Path, store: LocalStore
) -> None:
    """The base for the new whitening is saved in the commit that makes it the index's, not
    when the writer lets go: a reader opened in between finds it and replays nothing (a
    million-image reader would otherwise rebuild the whole index in memory, gigabytes)."""
    with store.writing():
        store.write([upsert(f"/{i}.jpg", i) for i in range(20)])
    whitening = learn_whitening(store.all_vectors(), dims=4)
    with store.writing():
        generation = store.set_whitening(whitening)
        assert saved_generations(tmp_path / "idx") == [generation]
        reader = LocalStore.open(tmp_path / "idx")
        index = reader.vectors
        assert index.base_generation == generation and index.base is not None
        assert index.base.ntotal == 20 and index.delta.ntotal == 0 and index.dim == 4
        (best, _), *_ = reader.search(unit(7)[None], k=3)[0]
        assert best.path == "/7.jpg"
    assert saved_generations(tmp_path / "idx") == [generation]  # nothing more to save at exit


def test_a_writer_killed_before_saving_a_new_whitenings_base_is_mended_by_the_next(
    tmp_path: Path, store: LocalStore
) -> None:
    """No base is usable once the whitening changed; until one is saved every reader replays
    the whole collection, so the next writer saves it even with nothing to write."""
    with store.writing():
        store.write([upsert(f"/{i}.jpg", i) for i in range(5)])
    store.catalogue.set_whitening(learn_whitening(store.all_vectors(), dims=4))  # then killed
    assert LocalStore.open(tmp_path / "idx").vectors.base is None  # replayed
    with store.writing():
        pass
    assert saved_generations(tmp_path / "idx") == [2]
    assert LocalStore.open(tmp_path / "idx").vectors.base_generation == 2


def test_iter_vectors_gives_every_stored_vector_with_its_id(store: LocalStore) -> None:
    with store.writing():
        store.write([upsert(f"/{n}.jpg", n) for n in range(5)])
        store.write([upsert("/9.jpg", 9)], removals=["/2.jpg"])
    seen = {
        int(i): v
        for ids, vectors in store.iter_vectors()
        for i, v in zip(ids, vectors, strict=True)
    }
    by_path = {r.path: r.id for r in store.iter_records("ok")}
    assert sorted(by_path) == ["/0.jpg", "/1.jpg", "/3.jpg", "/4.jpg", "/9.jpg"]
    assert set(seen) == set(by_path.values())
    for path, image_id in by_path.items():
        np.testing.assert_array_equal(seen[image_id], unit(int(path[1])))


def test_not_duplicate_verdicts_persist_as_pairs_and_leave_with_their_image(
    tmp_path: Path, store: LocalStore
) -> None:
    with store.writing():
        store.write([upsert("/a.jpg", 1), upsert("/b.jpg", 2), upsert("/c.jpg", 3)])
        ids = {r.path: r.id for r in store.iter_records()}
        before = store.generation()
        assert store.add_not_duplicates([ids["/c.jpg"], ids["/a.jpg"], ids["/b.jpg"]]) > before
    store.close()
    store = LocalStore.open(tmp_path / "idx")
    a, b, c = ids["/a.jpg"], ids["/b.jpg"], ids["/c.jpg"]
    assert store.not_duplicate_pairs() == {(a, b), (a, c), (b, c)}
    with store.writing():
        store.write([], ["/b.jpg"])
    assert store.not_duplicate_pairs() == {(a, c)}


def test_local_features_are_stored_replaced_and_dropped_with_their_image(
    store: LocalStore,
) -> None:
    rng = np.random.default_rng(3)
    (first, second) = local_features(rng.random((2, 8, 5, 5)).astype(np.float32), keep=4)
    with store.writing():
        store.write([replace(upsert("/a.jpg", 1), local_features=first), upsert("/b.jpg", 2)])
    a, b = (store.record_by_path(p) for p in ("/a.jpg", "/b.jpg"))
    assert a is not None and b is not None
    found = store.local_features([a.id, b.id, 999])
    assert list(found) == [a.id]  # b was written without, 999 does not exist
    assert np.array_equal(found[a.id].descriptors, first.descriptors)
    with store.writing():
        store.write([replace(upsert("/a.jpg", 1, mtime=2), local_features=second)])
    assert np.array_equal(store.local_features([a.id])[a.id].positions, second.positions)
    with store.writing():
        store.write([], ["/a.jpg"])
    assert store.local_features([a.id]) == {}


def test_vectors_of_gives_the_stored_vectors_of_the_ids_that_have_one(store: LocalStore) -> None:
    with store.writing():
        store.write([upsert(f"/{n}.jpg", n) for n in range(4)])
        store.write([Upsert("/bad.jpg", 5, 1, None, reason="not an image")], removals=["/2.jpg"])
    ids = {r.path: r.id for r in store.iter_records()}
    asked = [ids["/3.jpg"], ids["/0.jpg"], ids["/bad.jpg"], 3, 99]  # 3 was /2.jpg: removed
    found = store.vectors_of(asked)
    assert sorted(found) == sorted([ids["/0.jpg"], ids["/3.jpg"]])
    np.testing.assert_array_equal(found[ids["/3.jpg"]], unit(3))
    assert store.vectors_of([]) == {}
