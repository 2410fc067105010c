"""``Index.add`` adapts an index to its images on its own once it is large enough, again as it
doubles, and never once told not to; scores stay the model's own cosines throughout."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lookalike.embed.model_dir import save_model_dir
from lookalike.embed.preprocess import Preprocess
from lookalike.embed.registry import create_backbone
from lookalike.embed.retrieval_net import RetrievalNet
from lookalike.index import Index
from lookalike.present.cli import main
from lookalike.store.whitening import ADAPTED, PCA, Whitening
from lookalike.train import adapt


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adapt from 4 images, so that the eight test photos show the policy."""
    monkeypatch.setattr(adapt, "ADAPT_FROM", 4)


def split(photos: Path, sizes: tuple[int, ...]) -> list[Path]:
    """The photos moved into folders of these sizes, in name order."""
    names = sorted(photos.glob("*.jpg"))
    folders, start = [], 0
    for n, size in enumerate(sizes):
        folder = photos / f"part{n}"
        folder.mkdir()
        for path in names[start : start + size]:
            shutil.move(path, folder / path.name)
        folders.append(folder)
        start += size
    return folders


def adapted_from(index: Index) -> int | None:
    whitening = index.store.whitening()
    return whitening.collection if whitening and whitening.kind == ADAPTED else None


def test_an_index_adapts_when_big_enough_and_again_when_it_doubles(
    photos: Path, tmp_path: Path, small_threshold: None
) -> None:
    a, b, c = split(photos, (3, 2, 3))
    with Index.create(tmp_path / "idx", model="seed_cnn") as index:
        assert index.add([a]).adaptation is None and adapted_from(index) is None  # 3 < 4
        phases: list[str] = []
        report = index.add([a, b], on_phase=phases.append)
        assert report.adaptation is not None and report.adaptation.images == 5
        assert adapted_from(index) == 5 and phases == ["embedding", "adapting"]
        phases.clear()
        assert index.add([a, b], on_phase=phases.append).adaptation is None  # unchanged:
        assert phases == []  # nothing embedded, nothing learned again
        assert index.add([a, b, c]).adaptation is None and adapted_from(index) == 5  # 8 < 10
        copies = photos / "copies"
        copies.mkdir()
        shutil.copy(next(a.iterdir()), copies / "1.jpg")
        shutil.copy(next(b.iterdir()), copies / "2.jpg")
        report = index.add([a, b, c, copies])
        assert len(index) == 10 and report.adaptation is not None  # 10 >= 2 x 5
        assert adapted_from(index) == 10 and index.info().adapts
        # ranked through the adaptation, scored with the model's own cosines
        query = next(c.iterdir())  # a photo without a copy
        hits = index.search(query, k=4)
        assert hits[0].path == str(query) and hits[0].score == pytest.approx(1.0, abs=1e-4)
        first = index.store.record_by_path(str(query))
        assert first is not None
        mine = index.store.vector(first.id)
        for hit in hits[1:]:
            theirs = index.store.vector(hit.id)
            assert mine is not None and theirs is not None
            assert hit.score == pytest.approx(float(mine @ theirs), abs=1e-5)


def test_told_not_to_it_stays_raw_until_adapt_is_asked_and_a_chosen_whitening_stays(
    photos: Path, tmp_path: Path, small_threshold: None, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = split(photos, (4, 4))
    where = str(tmp_path / "idx")
    assert main(["index", str(a), "--index", where, "--model", "seed_cnn"]) == 0
    assert "adapted to 4 images x 3 views" in capsys.readouterr().out
    assert main(["index", str(a), "--index", where, "--no-adapt", "-q"]) == 0
    assert main(["index", str(a), str(b), "--index", where]) == 0  # doubled, but told not to
    assert "adapted" not in capsys.readouterr().out
    with Index.open(where) as index:
        assert index.store.whitening() is None and not index.info().adapts
    assert main(["info", "--index", where]) == 0
    assert "none, by choice" in capsys.readouterr().out
    assert main(["adapt", "--index", where, "--views", "2", "-q"]) == 0
    with Index.open(where) as index:
        assert adapted_from(index) == 8 and index.info().adapts
        index.learn_whitening(dims=4)  # the user's own choice: growing does not replace it
    copies = photos / "copies"
    copies.mkdir()
    for n, path in enumerate(sorted(a.iterdir()) + sorted(b.iterdir())):
        shutil.copy(path, copies / f"{n}.jpg")
    with Index.open(where) as index:
        assert index.add([a, b, copies]).adaptation is None
        whitening = index.store.whitening()
        assert len(index) == 16 and whitening is not None and whitening.kind == PCA


def test_files_gone_unreadable_leave_the_index_unadapted_with_the_reason(
    photos: Path, tmp_path: Path, small_threshold: None
) -> None:
    def spoil_the_files(done: int, total: int) -> None:
        if done == total == 8 and not spoiled:  # every file embedded: now none decodes
            for path in photos.glob("*.jpg"):
                path.write_bytes(b"not a picture any more")
            spoiled.append(True)

    spoiled: list[bool] = []
    with Index.create(tmp_path / "idx", model="seed_cnn") as index:
        report = index.add([photos], progress=spoil_the_files)
        assert spoiled and report.added == 8 and report.adaptation is None
        assert report.not_adapted and "found 0" in report.not_adapted
        assert index.store.whitening() is None and len(index) == 8
        vector = index.store.vector(1)
        assert vector is not None  # the vectors are kept, and searched as they are
        assert [record.id for record, _ in index.store.search(vector[None], 1)[0]] == [1]


def test_a_trained_model_ending_with_its_own_whitening_is_not_adapted(
    photos: Path, tmp_path: Path, small_threshold: None
) -> None:
    made = {}
    for name, whitened in (("whitened", True), ("plain", False)):
        net = RetrievalNet(create_backbone("seed_cnn"))
        if whitened:  # as `lookalike train` ends it; a plain rotation does here
            net.set_whitening(Whitening(np.zeros(128, np.float32), np.eye(128, dtype=np.float32)))
        save_model_dir(tmp_path / name, net, "seed_cnn", Preprocess(128), "")
        with Index.create(tmp_path / f"idx-{name}", model=str(tmp_path / name)) as index:
            made[name] = index.add([photos]).adaptation
            info = index.info()
            assert (info.model_whitened, info.adapts) == (whitened, not whitened)
    assert made["whitened"] is None and made["plain"] is not None
