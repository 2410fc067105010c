"""``lookalike adapt``: an index learns from its own images' augmented views what to ignore."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from lookalike.decode.image import decode_image
from lookalike.errors import LookalikeError
from lookalike.index import Index
from lookalike.normalise import l2_normalise
from lookalike.present.cli import main
from lookalike.store.whitening import ADAPTED
from lookalike.train.adapt import adapt_index
from lookalike.train.augment import Augment


@pytest.fixture
def index_dir(built_index: Path, tmp_path: Path) -> Path:
    """A private copy of the session's index of eight photos."""
    return Path(shutil.copytree(built_index, tmp_path / "index"))


def separation(index: Index, seed: str) -> float:
    """Mean cosine between two fresh augmented views of one photo, less that between views
    of different photos, in the vectors the index searches."""
    paths = [record.path for record in index.records()]
    images = [decode_image(path, max_side=336).image for path in paths]
    views = [
        Augment()(image, random.Random(f"{seed}:{i}:{v}"))
        for i, image in enumerate(images)
        for v in (0, 1)
    ]
    vectors = index.embedder.embed(views)
    whitening = index.store.whitening()
    vectors = whitening.apply(vectors) if whitening else l2_normalise(vectors)
    similarity = vectors @ vectors.T
    same = np.repeat(np.arange(len(paths)), 2)
    mask = same[:, None] == same[None, :]
    np.fill_diagonal(mask, False)
    others = same[:, None] != same[None, :]
    return float(similarity[mask].mean() - similarity[others].mean())


def test_adapted_index_tells_photos_apart_better_under_unseen_augmentations(
    index_dir: Path,
) -> None:
    with Index.open(index_dir) as index:
        before = separation(index, "unseen")
        done = adapt_index(index, views=3)
        assert (done.images, done.views, done.skipped) == (8, 3, 0)
        whitening = index.store.whitening()
        assert whitening is not None and whitening.kind == ADAPTED
        after = separation(index, "unseen")
        assert after > before + 0.05, (before, after)
        info = index.info()
        assert (info.whitening_kind, info.centred_only) == (ADAPTED, False)
        # every photo still finds itself first, now through the adapted vectors
        for record in index.records():
            hits = index.search(record.path, k=2)
            assert hits[0].path == record.path and hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_the_same_seed_learns_the_same_adaptation(index_dir: Path, tmp_path: Path) -> None:
    other = Path(shutil.copytree(index_dir, tmp_path / "other"))
    learned = []
    for directory in (index_dir, other):
        with Index.open(directory) as index:
            adapt_index(index, sample=5, views=2, seed=3)
            learned.append(index.store.whitening())
    assert all(w is not None for w in learned)
    np.testing.assert_array_equal(learned[0].projection, learned[1].projection)  # type: ignore[union-attr]


def test_files_that_no_longer_decode_are_skipped_and_too_few_is_an_error(
    photos: Path, tmp_path: Path
) -> None:
    # a private copy of the photos: the session's own must keep their bytes and times
    with Index.create(tmp_path / "idx") as index:
        index.add([photos], adapt=False)
        broken = Path(sorted(record.path for record in index.records())[0])
        broken.write_bytes(b"no longer a picture")
        assert adapt_index(index, views=2).skipped == 1
        with pytest.raises(LookalikeError, match="at least 2 views"):
            adapt_index(index, views=1)
        with pytest.raises(LookalikeError, match="sample of at least 2"):
            adapt_index(index, sample=1)


def test_cli_adapts_info_says_so_and_index_no_whiten_drops_it(
    index_dir: Path, photo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["adapt", "--index", str(index_dir), "--views", "2"]) == 0
    assert "adapted to 8 images x 2 views" in capsys.readouterr().out
    assert main(["info", "--index", str(index_dir)]) == 0
    assert "adapted to the index's own images" in capsys.readouterr().out
    assert main(["adapt", "--index", str(index_dir), "--shrinkage", "-1"]) == 1
    assert "--shrinkage must be >= 0" in capsys.readouterr().err
    assert main(["index", str(photo_library), "--index", str(index_dir), "--no-whiten", "-q"]) == 0
    with Index.open(index_dir) as index:
        assert index.store.whitening() is None


def test_index_adapt_indexes_then_adapts_and_milvus_is_refused_first(
    photo_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index_dir = tmp_path / "index"
    assert main(["index", str(photo_library), "--index", str(index_dir), "--adapt"]) == 0
    assert "adapted to 8 images x 3 views" in capsys.readouterr().out
    with Index.open(index_dir) as index:
        whitening = index.store.whitening()
        assert whitening is not None and whitening.kind == ADAPTED
    assert main(["adapt", "--index", "milvus://127.0.0.1:9/nowhere"]) == 1
    assert "works on an embedded index directory" in capsys.readouterr().err
