"""ONNX Runtime gives PyTorch's vectors under the same model id, exported once and cached."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from lookalike.embed.calibration import CALIBRATION
from lookalike.embed.embedder import TorchEmbedder
from lookalike.embed.model_id import int8_model_id
from lookalike.embed.onnx import ExportSpec, OnnxEmbedder, default_threads
from lookalike.embed.registry import RUNTIMES, create_embedder, runtime_for
from lookalike.errors import ModelNotFoundError

# Today's calibration (lookalike.embed.calibration): a change to it must change this tag.
TAG = "76bed7c8"


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.fromarray(getattr(data, name)()) for name in ("astronaut", "chelsea", "coffee")]


def torch_embedder(name: str) -> TorchEmbedder:
    embedder = create_embedder(name, runtime="torch")
    assert isinstance(embedder, TorchEmbedder)
    return embedder


def onnx_of(reference: TorchEmbedder, folder: Path, **options: object) -> OnnxEmbedder:
    """``reference``'s network exported into ``folder``."""
    spec = ExportSpec(reference.model_id, reference.preprocess, weights="test")
    return OnnxEmbedder(spec, lambda: reference, folder=folder, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0", "seed_cnn"])
def test_same_vectors_as_pytorch(name: str, tmp_path: Path, photos: list[Image.Image]) -> None:
    reference = torch_embedder(name)
    onnx = onnx_of(reference, tmp_path, export_at=1)
    vectors = onnx.embed(photos)
    assert onnx.path.parent == tmp_path and onnx.path.is_file()  # exported, not PyTorch's answer
    assert (onnx.model_id, onnx.dim, onnx.image_size) == (
        reference.model_id,
        reference.dim,
        reference.image_size,
    )
    assert vectors.dtype == np.float32 and vectors.shape == (3, reference.dim)
    assert np.abs(vectors - reference.embed(photos)).max() < 1e-4


def test_exported_once_then_reused(tmp_path: Path, photos: list[Image.Image]) -> None:
    reference = torch_embedder("seed_cnn")
    first = onnx_of(reference, tmp_path, export_at=3)
    first.embed(photos[:2])  # a small call: PyTorch answers, nothing is exported
    assert list(tmp_path.iterdir()) == []
    first.embed(photos)
    exported = first.path.stat().st_mtime_ns
    second = onnx_of(torch_embedder("seed_cnn"), tmp_path, export_at=3)
    second._make_torch = lambda: pytest.fail("PyTorch was asked for")  # type: ignore[method-assign]
    second.embed(photos[:1])  # cached: even one image goes through ONNX Runtime
    assert second.path == first.path and second.path.stat().st_mtime_ns == exported
    assert second._session is not None and second.dim == first.dim
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]  # no temporary left


def test_cache_key_follows_the_weights(tmp_path: Path) -> None:
    import torch

    from lookalike.embed.networks.seed_cnn import seeded_seed_cnn

    def exported(weights: Path | None = None, pooling: str | None = None) -> Path:
        embedder = create_embedder("seed_cnn", weights, pooling, runtime="onnx")
        assert isinstance(embedder, OnnxEmbedder)
        return embedder.float_path

    a, b = tmp_path / "a" / "seed.pt", tmp_path / "b" / "seed.pt"
    for path in (a, b):
        path.parent.mkdir()
        torch.save(seeded_seed_cnn(seed=3).state_dict(), path)
    assert exported(a) == exported(b)  # named by content, not by where the file is
    assert exported(a) != exported()
    assert exported() == exported() != exported(pooling="gem")


def test_runtime_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOKALIKE_RUNTIME", raising=False)
    assert RUNTIMES == ("onnx", "onnx-int8", "torch")
    assert isinstance(create_embedder("seed_cnn"), OnnxEmbedder)  # the default
    # mobilenet_v2 is measured to lose < 1 point of MAP@R in int8: int8 by default
    assert CALIBRATION.tag == TAG
    assert create_embedder("mobilenet_v2").model_id == f"mobilenet_v2-gap-letterbox224-int8-{TAG}"
    assert runtime_for("mobilenet_v2-gap-letterbox224") == "onnx"  # float indexes stay float
    assert runtime_for(f"efficientnet_lite0-gap-letterbox224-int8-{TAG}") == "onnx-int8"
    assert runtime_for("mobilenet_v2-gap-letterbox224-int8") == "onnx-int8"  # before tags
    monkeypatch.setenv("LOOKALIKE_RUNTIME", "torch")
    assert isinstance(create_embedder("seed_cnn"), TorchEmbedder)
    assert create_embedder("seed_cnn", runtime="onnx-int8").model_id.endswith(f"-int8-{TAG}")
    with pytest.raises(ModelNotFoundError, match="unknown runtime 'tensorflow'"):
        create_embedder("seed_cnn", runtime="tensorflow")


def test_falls_back_to_pytorch_without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOKALIKE_RUNTIME", raising=False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    assert isinstance(create_embedder("seed_cnn"), TorchEmbedder)
    fallback = create_embedder("mobilenet_v2")  # float32 PyTorch, not int8
    assert isinstance(fallback, TorchEmbedder) and "-int8" not in fallback.model_id
    with pytest.raises(ModelNotFoundError, match="int8 runtime needs onnxruntime"):
        create_embedder("seed_cnn", runtime="onnx-int8")


def test_int8_is_another_vector_space_close_to_float(
    tmp_path: Path, photos: list[Image.Image]
) -> None:
    reference = torch_embedder("seed_cnn")
    int8 = onnx_of(reference, tmp_path, calibration=CALIBRATION)
    assert (
        int8.model_id
        == int8_model_id(reference.model_id, TAG)
        == reference.model_id + "-int8-" + TAG
    )
    vectors = int8.embed(photos[:1])  # even one image: PyTorch cannot stand in for int8
    assert int8.path.is_file() and int8.path.name.endswith(f"-int8-{TAG}.onnx")
    assert int8.path.stat().st_size < int8.float_path.stat().st_size
    vectors = int8.embed(photos)
    cosines = (vectors * reference.embed(photos)).sum(axis=1)
    assert cosines.min() > 0.98, cosines  # close to the float vectors, not equal
    assert not np.array_equal(vectors, reference.embed(photos))


def test_an_index_reopens_with_the_precision_that_made_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lookalike import Index
    from lookalike.demo import write_photos

    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "cache"))
    photos = write_photos(tmp_path / "photos", ("astronaut", "coffee", "rocket"))
    monkeypatch.delenv("LOOKALIKE_RUNTIME", raising=False)
    with Index.create(tmp_path / "float", model="seed_cnn") as index:
        index.add([tmp_path / "photos"])
    monkeypatch.setenv("LOOKALIKE_RUNTIME", "onnx-int8")
    with Index.create(tmp_path / "int8", model="seed_cnn") as index:
        index.add([tmp_path / "photos"])
        assert index.info().model_id.endswith(f"-int8-{TAG}")
    with Index.open(tmp_path / "float") as index:  # int8 asked for, float32 needed
        assert index.search(photos[1], k=1)[0].path == str(photos[1])
        assert "-int8" not in index.embedder.model_id
    monkeypatch.delenv("LOOKALIKE_RUNTIME")
    with Index.open(tmp_path / "int8") as index:  # no setting needed to search it
        assert index.search(photos[1], k=1)[0].path == str(photos[1])
        assert index.embedder.model_id.endswith(f"-int8-{TAG}")


def test_inference_threads_follow_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as Ray sets it in a one-CPU actor
    assert default_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == len(os.sched_getaffinity(0))
