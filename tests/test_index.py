from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lookalike import Index
from lookalike.errors import ImageError, LookalikeError, ModelMismatchError
from lookalike.evaluate.edits import apply_edit


def test_add_indexes_good_files_and_records_bad_ones(photos: Path, tmp_path: Path) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (photos / "empty.png").touch()
    with Index.create(tmp_path / "idx") as index:
        report = index.add([photos])
        assert (report.added, report.updated, report.removed, report.unchanged) == (8, 0, 0, 0)
        assert sorted(os.path.basename(p) for p, _ in report.skipped) == ["broken.jpg", "empty.png"]
        assert len(index) == 8
        assert dict(index.skipped())[str(photos / "empty.png")] == "empty file (0 bytes)"
        info = index.info()
        assert (info.images, info.skipped, info.model, info.dim) == (
            8,
            2,
            "efficientnet_lite0_gem",
            1280,
        )


def test_rerun_is_incremental(photos: Path, tmp_path: Path) -> None:
    with Index.create(tmp_path / "idx") as index:
        index.add([photos])
        ids = {h.path: h.id for h in index.search(photos / "coffee.jpg", k=8)}
        again = index.add([photos])
        assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 8)

        # a changed file is re-embedded under the same id, a vanished one removed, a new one added
        with Image.open(photos / "rocket.jpg") as rocket:
            apply_edit("flip", rocket).save(photos / "coffee.jpg")
        (photos / "moon.jpg").unlink()
        with Image.open(photos / "chelsea.jpg") as cat:
            apply_edit("greyscale", cat).save(photos / "sub-cat.jpg")
        report = index.add([photos])
        assert (report.added, report.updated, report.removed, report.unchanged) == (1, 1, 1, 6)
        hits = index.search(photos / "coffee.jpg", k=2)
        assert hits[0].id == ids[str(photos / "coffee.jpg")] and hits[0].score > 0.999
        assert hits[1].path == str(photos / "rocket.jpg")  # it is a flipped rocket now
        assert str(photos / "moon.jpg") not in {
            h.path for h in index.search(photos / "coins.jpg", k=10)
        }


def test_removing_one_folder_leaves_another_indexed_folder_alone(
    photos: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (photos / "astronaut.jpg").rename(other / "astronaut.jpg")
    with Index.create(tmp_path / "idx") as index:
        index.add([photos, other])
        assert index.add([photos]).removed == 0  # re-indexing one root keeps the other
        assert index.remove([other]) == 1
        assert len(index) == 7


@pytest.mark.parametrize("kind", ["path", "pil", "array", "bytes"])
def test_every_query_kind_finds_the_edited_photos_original(
    built_index: Path, photo_library: Path, tmp_path: Path, kind: str
) -> None:
    with Image.open(photo_library / "chelsea.jpg") as cat:
        edited = apply_edit("centre_crop", cat)
    edited.save(tmp_path / "q.jpg", quality=90)
    query = {
        "path": tmp_path / "q.jpg",
        "pil": edited,
        "array": np.asarray(edited),
        "bytes": (tmp_path / "q.jpg").read_bytes(),
    }[kind]
    with Index.open(built_index) as index:
        hits = index.search(query, k=3)
        (by_cosine,) = index.search_many([query], k=3, rerank=False)
    assert hits[0].path == str(photo_library / "chelsea.jpg")
    assert hits[0].score > hits[1].score + 0.2
    # spatial re-ranking may swap hits whose cosines are close (scores stay cosines): the
    # global ranking alone is in score order
    scores = [h.score for h in by_cosine.hits]
    assert scores == sorted(scores, reverse=True) and by_cosine.hits[0].path == hits[0].path


def test_an_indexed_query_comes_first_unless_excluded(
    built_index: Path, photo_library: Path
) -> None:
    query = str(photo_library / "astronaut.jpg")
    with Index.open(built_index) as index:
        hits = index.search(query, k=3)
        assert hits[0].path == query and hits[0].score == pytest.approx(1.0, abs=1e-5)
        without = index.search(query, k=3, exclude_self=True)
        assert query not in {h.path for h in without} and len(without) == 3


def test_search_many_reports_bad_queries_without_failing_the_rest(
    built_index: Path, photo_library: Path, tmp_path: Path
) -> None:
    (tmp_path / "junk.jpg").write_text("nope")
    with Index.open(built_index) as index:
        results = index.search_many([photo_library / "coins.jpg", tmp_path / "junk.jpg"], k=1)
        assert results[0].hits[0].path == str(photo_library / "coins.jpg")
        assert results[1].hits == [] and results[1].error and "not an image" in results[1].error
        with pytest.raises(ImageError):
            index.search(tmp_path / "junk.jpg")


def test_an_index_refuses_another_model(built_index: Path) -> None:
    with pytest.raises(ModelMismatchError, match="efficientnet_lite0_gem"):
        Index.open(built_index, model="mobilenet_v2")


def test_learned_whitening_is_kept_and_still_finds_copies(
    photos: Path, photo_library: Path, tmp_path: Path
) -> None:
    with Index.create(tmp_path / "idx") as index:
        index.add([photos])
        assert index.learn_whitening(dims=6) == 8
    with Index.open(tmp_path / "idx") as index:
        assert index.info().whitening_dim == 6
        with Image.open(photo_library / "coffee.jpg") as coffee:
            hits = index.search(apply_edit("flip", coffee), k=2)
        assert hits[0].path == str(photos / "coffee.jpg")
        assert index.search(photos / "moon.jpg", k=1)[0].score == pytest.approx(1.0, abs=1e-4)
        index.drop_whitening()
        assert index.info().whitening_dim is None


def test_a_centred_index_says_so_and_still_finds_copies(
    photos: Path, photo_library: Path, tmp_path: Path
) -> None:
    with Index.create(tmp_path / "idx") as index:
        index.add([photos])
        assert index.learn_whitening(centre_only=True) == 8
    with Index.open(tmp_path / "idx") as index:
        info = index.info()
        assert info.centred_only and info.whitening_dim == info.dim
        with Image.open(photo_library / "coffee.jpg") as coffee:
            hits = index.search(apply_edit("flip", coffee), k=2)
        assert hits[0].path == str(photos / "coffee.jpg")
        # centred, the unrelated photos score lower against the moon in the search...
        record = index.store.record_by_path(str(photos / "moon.jpg"))
        assert record is not None
        moon = index.store.vector(record.id)
        assert moon is not None
        searched = {Path(r.path).name: s for r, s in index.store.search(moon[None], 8)[0]}
        # ...yet a hit's score is the model's own cosine, as the raw index gives it
        centred = {Path(h.path).name: h.score for h in index.search(photos / "moon.jpg", k=8)}
        index.drop_whitening()
        raw = {Path(h.path).name: h.score for h in index.search(photos / "moon.jpg", k=8)}
        assert not index.info().centred_only
    assert centred == pytest.approx(raw, abs=1e-5)
    others = [name for name in raw if name != "moon.jpg"]
    assert sum(searched[n] for n in others) < sum(raw[n] for n in others)


def test_bad_arguments_at_the_edge_are_clear_errors(
    built_index: Path, photo_library: Path, shared_tmp: Path, as_unprivileged: Callable[..., Any]
) -> None:
    moon = str(photo_library / "moon.jpg")
    with Index.open(built_index) as index:
        for k in (0, -1):
            with pytest.raises(LookalikeError, match="k must be at least 1"):
                index.search(moon, k=k)
        # Empty arrays are bad queries of their own, and the rest of the batch is answered.
        empty = np.zeros((0, 0, 3), np.uint8)
        results = index.search_many([empty, moon, np.zeros((4, 0), np.uint8)], k=1)
        assert [bool(r.error) for r in results] == [True, False, True]
        assert results[1].hits[0].path == moon and "uint8 (H, W)" in (results[0].error or "")
    with pytest.raises(LookalikeError, match="batch size must be at least 1"):
        Index.open(built_index).add([photo_library], batch_size=0)
    # A folder this user may not write: one clear error (as user nobody: root writes anywhere).
    kind, text = as_unprivileged(lambda: Index.create(shared_tmp / "idx", model="seed_cnn"))
    assert kind == "raised" and text.startswith("StoreError: cannot make an index at")
    assert "Permission denied" in text


def test_a_run_stopped_while_walking_takes_nothing_for_deleted(
    photos: Path, tmp_path: Path
) -> None:
    (photos / "sub").mkdir()
    (photos / "coffee.jpg").rename(photos / "sub" / "coffee.jpg")

    class Stop(Exception):
        pass

    def stop_in_sub(folder: str) -> None:
        if folder.endswith("sub"):
            raise Stop

    with Index.create(tmp_path / "idx") as index:
        index.add([photos])
        with pytest.raises(Stop):  # the walk reaches sub/ last, after the other 7 photos
            index.add([photos], on_folder=stop_in_sub)
        assert len(index) == 8
        assert index.add([photos]).unchanged == 8
