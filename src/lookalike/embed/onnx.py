"""Run an embedder's network with ONNX Runtime: the same vectors as PyTorch, faster on a CPU.

The network (backbone, pooling and head) is exported once from PyTorch and cached under
``cache_home()/onnx``, named by a hash of its weights file and the export settings, so a
changed model or setting exports again and two processes never load a half-written file.
The name is computed without PyTorch: once the file is cached, embedding needs no PyTorch
at all. ONNX Runtime folds batch norm into convolutions and fuses activations, which
PyTorch's eager mode does not.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from lookalike.config import cache_home
from lookalike.embed.calibration import Calibration
from lookalike.embed.classes import ClassHead, TopClasses, cached_head, head_path
from lookalike.embed.local_features import LocalFeatures, local_features
from lookalike.embed.model_id import int8_model_id
from lookalike.embed.preprocess import Preprocess
from lookalike.normalise import l2_normalise

if TYPE_CHECKING:
    from lookalike.embed.embedder import FeatureMaps, Stages, TorchEmbedder

OPSET = 17
# bump when the exported graph changes for the same weights; 2: the local features' map
# as a second output (the vectors are the same)
EXPORT_VERSION = 2
INPUT, OUTPUT, LOCALS, AVERAGE = "images", "vectors", "locals", "average"
EXPORT_AT = 32  # images in one call that make exporting worth its few seconds


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def default_threads() -> int:
    """Threads for one inference session: ``$OMP_NUM_THREADS`` where it is set (as PyTorch
    reads it; Ray sets it to an actor's CPUs, so that two actors on two cores do not run four
    threads), else every core this process may use."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


@dataclass(frozen=True)
class ExportSpec:
    """What an exported float network depends on, known without building it."""

    model_id: str  # the float vector space, e.g. "mobilenet_v2-gap-letterbox224"
    preprocess: Preprocess
    weights: str  # SHA-256 of the weights file, or "init": the network makes its own

    @property
    def name(self) -> str:
        """The model's name for file names: "mobilenet_v2" (no weights digest)."""
        return self.model_id.split("-", 1)[0].split("@", 1)[0]


def export_key(spec: ExportSpec) -> str:
    """Hash of everything the exported graph depends on: weights, model id, export settings,
    and the PyTorch that exports (and makes a seeded init), read without importing it."""
    settings = (
        spec.model_id,
        spec.preprocess.size,
        spec.weights,
        OPSET,
        EXPORT_VERSION,
        importlib.metadata.version("torch"),
    )
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:16]


def onnx_path(spec: ExportSpec, folder: Path | None = None) -> Path:
    """Where the float network is cached (the file may not exist yet)."""
    return (folder or cache_home() / "onnx") / f"{spec.name}-{export_key(spec)}.onnx"


def int8_path(float_path: Path, calibration: Calibration) -> Path:
    """Where the network quantised with ``calibration`` is cached, beside the float one."""
    return float_path.with_name(f"{float_path.stem}-int8-{calibration.tag}.onnx")


def export_model(embedder: TorchEmbedder, path: Path) -> Path:
    """Export the embedder's network to ``path`` (atomically) unless it is there already.

    Input ``images`` float32 (n, 3, size, size), normalised; outputs ``vectors`` float32
    (n, dim), not yet L2-normalised, ``locals``, the map local features come from
    (float32 (n, c, h, w), :mod:`lookalike.embed.local_features`), and for a classifying
    network not pooled by the average, ``average``, the classifier's input float32
    (n, num_features). The batch dimension is dynamic.
    """
    if path.is_file():
        return path
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    size = embedder.preprocess.size  # the network input; image_size is for decoding
    outputs = [OUTPUT, LOCALS, *([AVERAGE] if embedder.averages_apart else [])]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".onnx")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # "SAME" padding is computed from the input size, fixed at export: that is intended.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
            # The TorchScript exporter is deprecated, but the newer one needs onnxscript.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                embedder.module().eval(),
                (torch.zeros(2, 3, size, size),),
                tmp,
                input_names=[INPUT],
                output_names=outputs,
                dynamic_axes={name: {0: "n"} for name in (INPUT, *outputs)},
                opset_version=OPSET,
                dynamo=False,  # the TorchScript exporter needs no onnxscript
            )
        os.replace(tmp, path)  # atomic: readers see no file or the whole file
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def quantize_int8(
    float_model: Path, path: Path, preprocess: Preprocess, calibration: Calibration
) -> Path:
    """Static int8 quantisation of ``float_model`` into ``path`` (atomically), unless cached.

    Settings and activation ranges from ``calibration`` (by default weights per output
    channel in int8, activations in uint8, QDQ form): CPUs with VNNI instructions run it two
    to three times faster.
    """
    if path.is_file():
        return path
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter(calibration.batches(preprocess))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: batch}

    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(float_model), str(prepared))
        quantize_static(
            str(prepared),
            str(quantized),
            Reader(),
            quant_format=QuantFormat[calibration.quant_format],
            per_channel=calibration.per_channel,
            activation_type=QuantType[calibration.activation_type],
            weight_type=QuantType[calibration.weight_type],
            calibrate_method=CalibrationMethod[calibration.calibrate_method],
        )
        os.replace(quantized, path)
    return path


def open_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session on ``threads`` cores (default: all this process may use)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning, leaving the cores to the decode workers.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def output_dim(session: Any) -> int:
    """The vector size an exported network's session makes: its output is (n, dim)."""
    return int(session.get_outputs()[0].shape[1])


class OnnxEmbedder:
    """An exported network's vectors, computed by ONNX Runtime.

    Built from the :class:`ExportSpec` alone when the file is cached: PyTorch is imported
    only to export it (``make_torch`` builds the PyTorch embedder then), and to embed fewer
    than ``export_at`` images before that (a search, a small folder), since exporting takes
    seconds.

    In float32 (the default) it has the ``model_id``, ``dim`` and ``image_size`` of the
    PyTorch embedder: the vectors agree to float rounding, so indexes made by either are
    interchangeable. With a ``calibration`` the network is quantised (:func:`quantize_int8`);
    its vectors differ slightly, so its ``model_id`` says int8 and which calibration
    (:func:`~lookalike.embed.model_id.int8_model_id`), and PyTorch never stands in for it.
    """

    def __init__(
        self,
        spec: ExportSpec,
        make_torch: Callable[[], TorchEmbedder],
        calibration: Calibration | None = None,
        threads: int | None = None,
        folder: Path | None = None,
        export_at: int = EXPORT_AT,
        head: Callable[[], ClassHead] | None = None,
    ) -> None:
        self.spec = spec
        self.preprocess = spec.preprocess
        self.calibration = calibration
        self.model_id = (
            int8_model_id(spec.model_id, calibration.tag) if calibration else spec.model_id
        )
        self.image_size = spec.preprocess.decode_side  # one scale: the exported input size
        self.float_path = onnx_path(spec, folder)
        self.path = int8_path(self.float_path, calibration) if calibration else self.float_path
        self.threads = threads
        self.export_at = 0 if calibration else export_at
        self._make_torch = make_torch
        self._torch: TorchEmbedder | None = None
        self._session: Any = None
        self._make_head = head  # the ImageNet classifier on the graph's output, if it has one
        self._head: ClassHead | None = None
        self.dim = self._cached_dim() or self.torch().dim

    def _cached_dim(self) -> int | None:
        if self.path.is_file():  # the session is needed anyway
            self._session = open_session(self.path, self.threads)
            return output_dim(self._session)
        if self.float_path.is_file():  # not quantised yet: the float graph tells
            return output_dim(open_session(self.float_path, threads=1))
        return None

    def torch(self) -> TorchEmbedder:
        """The same network in PyTorch (float32), built on first use."""
        if self._torch is None:
            self._torch = self._make_torch()
        return self._torch

    def session(self) -> Any:
        """The ONNX Runtime session, exporting (and quantising) the model if not cached."""
        if self._session is None:
            if not self.float_path.is_file() and not self.path.is_file():
                export_model(self.torch(), self.float_path)
            if self.calibration is not None:
                quantize_int8(self.float_path, self.path, self.preprocess, self.calibration)
            self._session = open_session(self.path, self.threads)
        return self._session

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB images; returns float32 (n, dim), each row L2-normalised."""
        if self._session is None and len(images) < self.export_at and not self.path.is_file():
            return self.torch().embed(images)
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.run(self.preprocess.batch(images))

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Normalised images float32 (n, 3, size, size) -> L2-normalised vectors (n, dim)."""
        (vectors,) = self.session().run([OUTPUT], {INPUT: batch})
        return l2_normalise(np.asarray(vectors, dtype=np.float32))

    @property
    def has_classes(self) -> bool:
        return self._make_head is not None

    def embed_with_classes(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, list[TopClasses] | None]:
        """Vectors as :meth:`embed`, and each image's top ImageNet classes (None: no head),
        from one run of the graph: the classifier reads its output before normalisation."""
        if self._make_head is None or not images:
            return self.embed(images), None if self._make_head is None else []
        if self._session is None and len(images) < self.export_at and not self.path.is_file():
            return self.torch().embed_with_classes(images)
        pooled, *average = self.session().run(
            [OUTPUT, *self._average_output()], {INPUT: self.preprocess.batch(images)}
        )
        pooled = np.asarray(pooled, dtype=np.float32)
        return l2_normalise(pooled), self._classes(average[0] if average else pooled)

    @property
    def has_local_features(self) -> bool:
        return True  # the graph's second output

    def embed_with_local_features(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, list[TopClasses] | None, list[LocalFeatures]]:
        """Vectors, classes (None: no head) and local features from one run of the graph."""
        if not images:
            return self.embed(images), None if self._make_head is None else [], []
        if self._session is None and len(images) < self.export_at and not self.path.is_file():
            return self.torch().embed_with_local_features(images)
        pooled, stage, *average = self.session().run(
            [OUTPUT, LOCALS, *self._average_output()], {INPUT: self.preprocess.batch(images)}
        )
        pooled = np.asarray(pooled, dtype=np.float32)
        top = self._classes(average[0] if average else pooled) if self._make_head else None
        return l2_normalise(pooled), top, local_features(np.asarray(stage, dtype=np.float32))

    def _average_output(self) -> list[str]:
        """[AVERAGE] where the graph outputs the classifier's input apart from the vectors."""
        names = {output.name for output in self.session().get_outputs()}
        return [AVERAGE] if self._make_head is not None and AVERAGE in names else []

    def _classes(self, average: np.ndarray) -> list[TopClasses]:
        """The top ImageNet classes of the average-pooled final map (the graph's output),
        the head loaded on first use."""
        assert self._make_head is not None
        if self._head is None:
            self._head = cached_head(head_path(self.float_path), self._make_head)
        return self._head.top(np.asarray(average, dtype=np.float32))

    def feature_maps(self, images: Sequence[Image.Image], indices: Stages = None) -> FeatureMaps:
        """The float PyTorch network's maps (:meth:`TorchEmbedder.feature_maps`), for an int8
        model too: quantisation changes the values a little, not what the maps show."""
        return self.torch().feature_maps(images, indices)
