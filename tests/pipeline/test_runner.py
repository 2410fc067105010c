"""The local runner: files to vectors with decoding overlapped with inference, in order."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from lookalike.demo import write_photos
from lookalike.files.walk import FileEntry
from lookalike.pipeline import EmbedderSpec, LocalRunner, Mapper
from lookalike.pipeline.runner import default_workers


def entries(paths: list[Path]) -> list[FileEntry]:
    return [FileEntry(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]


def test_decode_threads_keep_order_and_reasons(tmp_path: Path) -> None:
    photos = write_photos(tmp_path, ("astronaut", "chelsea", "coffee", "rocket", "camera"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(photos[0].read_bytes()[:300])  # a truncated JPEG
    files = entries([photos[0], broken, *photos[1:]])
    mapper = Mapper(EmbedderSpec("seed_cnn", runtime="torch"))

    threaded = [r for batch in LocalRunner(2).map(files, mapper, 2) for r in batch]
    inline = [r for batch in LocalRunner(0).map(files, mapper, 4) for r in batch]
    # What a remote runner does: a pickled copy builds its own model and maps one batch.
    shipped = pickle.loads(pickle.dumps(mapper))(files)

    assert [r.entry.path for r in threaded] == [f.path for f in files]
    assert threaded[1].vector is None and threaded[1].reason and "truncated" in threaded[1].reason
    good = [r for r in threaded if r.vector is not None]
    assert len(good) == 5
    np.testing.assert_allclose(
        np.stack([r.vector for r in good]),  # type: ignore[misc]
        np.stack([r.vector for r in inline if r.vector is not None]),
        atol=1e-5,
    )
    assert [r.reason for r in shipped] == [r.reason for r in threaded]
    assert [r.meta for r in shipped] == [r.meta for r in threaded]
    assert shipped[0].meta is not None and shipped[0].meta.width == 512  # astronaut


def test_default_workers() -> None:
    assert default_workers(3) == 0  # nothing to overlap with
    assert 1 <= default_workers(1000) <= 4
