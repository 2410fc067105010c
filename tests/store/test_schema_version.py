"""Schema versions: an index made by an older lookalike is migrated on open, a newer one refused."""

from __future__ import annotations

import shutil
import sqlite3
import warnings
from pathlib import Path

import faiss
import numpy as np
import pytest

from lookalike import Index
from lookalike.demo import write_photos
from lookalike.store import open_store
from lookalike.store.catalogue import SCHEMA_VERSION, SchemaVersionError

# Made by lookalike at commit a06f72d (schema 1) from scikit-image's chelsea, coffee, rocket
# and astronaut plus one broken file, with the default model; its paths were then rewritten
# to /fixture/photos/. The FAISS cache is left out: the catalogue alone is the index.
V1_INDEX = Path(__file__).parent / "fixtures" / "index-v1"


@pytest.fixture
def v1_index(tmp_path: Path) -> Path:
    directory = tmp_path / "old-index"
    shutil.copytree(V1_INDEX, directory)
    return directory


def meta(directory: Path) -> dict[str, str]:
    with sqlite3.connect(directory / "catalogue.sqlite") as conn:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def test_a_v1_index_is_migrated_on_open_and_still_answers(v1_index: Path, tmp_path: Path) -> None:
    assert meta(v1_index)["schema_version"] == "1"
    with Index.open(v1_index) as index:
        info = index.info()
        assert (info.images, info.skipped, info.store) == (4, 1, "sqlite+faiss-flat")
        assert index.skipped() == [
            ("/fixture/photos/broken.jpg", "not an image, or a format this build cannot read")
        ]
        # The vectors made by the old code are found by today's model, photo by photo. Not
        # 0.99: int8 kernels round differently by CPU (on AVX2 without VNNI, 0.896 for
        # coffee), while another photo scores at most 0.6.
        photos = write_photos(tmp_path / "photos", ("chelsea", "coffee", "rocket", "astronaut"))
        for photo in photos:
            best = index.search(photo.read_bytes(), k=1)[0]
            assert best.path == f"/fixture/photos/{photo.name}" and best.score > 0.85
    migrated = meta(v1_index)
    assert migrated["schema_version"] == str(SCHEMA_VERSION)
    # int8 vectors depend on their calibration: the id now says which (the v1 one).
    assert migrated["model_id"] == "mobilenet_v2-gap-letterbox224-int8-76bed7c8"
    assert (migrated["store"], migrated["vector_index"]) == ("sqlite", "faiss-flat")
    assert len(migrated["index_uid"]) == 32
    with Index.open(v1_index) as again:  # a second open finds nothing left to migrate
        assert again.info().model_id == migrated["model_id"]


def test_an_index_from_a_newer_version_is_refused_with_a_clear_error(v1_index: Path) -> None:
    with sqlite3.connect(v1_index / "catalogue.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError, match=r"newer lookalike \(schema 99"):
        open_store(v1_index)
    assert meta(v1_index)["schema_version"] == "99"  # left as it was


def test_a_vector_cache_saved_by_v1_is_adopted_without_a_warning(v1_index: Path) -> None:
    """v1 saved its FAISS file without a checksum: the upgrade takes it as it is, once."""
    with sqlite3.connect(v1_index / "catalogue.sqlite") as conn:
        rows = conn.execute("SELECT id, vector FROM vectors").fetchall()
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(1280))
    vectors = np.stack([np.frombuffer(blob, np.float32) for _, blob in rows])
    index.add_with_ids(vectors, np.array([i for i, _ in rows], np.int64))
    faiss.write_index(index, str(v1_index / "vectors-1.faiss"))  # as v1 wrote it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "rebuilding" warning fails the test
        for _ in range(2):
            with Index.open(v1_index) as opened:
                (best, score), *_ = opened.store.search(vectors[:1], 1)[0]
                assert best.id == rows[0][0] and score > 0.999
