"""Run an embedder's network with ONNX Runtime: the same vectors as PyTorch, faster on a CPU.

The network (backbone, pooling and head) is exported once from PyTorch and cached under
``cache_home()/onnx``, named by a hash of its weights and the export settings, so a changed
model or setting exports again and two processes never load a half-written file.
ONNX Runtime folds batch norm into convolutions and fuses activations, which PyTorch's eager
mode does not.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lookalike.config import cache_home
from lookalike.embed.embedder import TorchEmbedder
from lookalike.embed.preprocess import Preprocess
from lookalike.normalise import l2_normalise

OPSET = 17
EXPORT_VERSION = 1  # bump when the exported graph changes for the same weights
INPUT, OUTPUT = "images", "vectors"
EXPORT_AT = 32  # images in one call that make exporting worth its few seconds


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def default_threads() -> int:
    """Threads for one inference session: every core this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


class _Network(torch.nn.Module):
    """The embedder's forward pass as one module, for the exporter."""

    def __init__(self, embedder: TorchEmbedder) -> None:
        super().__init__()
        self.embedder = embedder
        self.backbone = embedder.backbone  # registers the weights as this module's own

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embedder.forward(images)


def export_key(embedder: TorchEmbedder) -> str:
    """Hash of everything the exported graph depends on: weights, model id, export settings."""
    digest = hashlib.sha256()
    settings = (
        embedder.model_id,
        embedder.preprocess.size,
        OPSET,
        EXPORT_VERSION,
        torch.__version__,
    )
    digest.update(repr(settings).encode())
    network = _Network(embedder)
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def onnx_path(embedder: TorchEmbedder, folder: Path | None = None) -> Path:
    """Where the embedder's exported network is cached (the file may not exist yet)."""
    name = embedder.model_id.split("-", 1)[0].split("@", 1)[0]
    return (folder or cache_home() / "onnx") / f"{name}-{export_key(embedder)}.onnx"


def export_model(embedder: TorchEmbedder, path: Path) -> Path:
    """Export the embedder's network to ``path`` (atomically) unless it is there already.

    Input ``images`` float32 (n, 3, size, size), normalised; output ``vectors`` float32
    (n, dim), not yet L2-normalised. The batch dimension is dynamic.
    """
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    size = embedder.preprocess.size  # the network input; image_size is for decoding
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".onnx")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # "SAME" padding is computed from the input size, fixed at export: that is intended.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
            # The TorchScript exporter is deprecated, but the newer one needs onnxscript.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                _Network(embedder).eval(),
                (torch.zeros(2, 3, size, size),),
                tmp,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "n"}, OUTPUT: {0: "n"}},
                opset_version=OPSET,
                dynamo=False,  # the TorchScript exporter needs no onnxscript
            )
        os.replace(tmp, path)  # atomic: readers see no file or the whole file
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def calibration_batches(preprocess: Preprocess, batch_size: int = 16) -> list[np.ndarray]:
    """Network inputs for int8 calibration: scikit-image's bundled photographs, each also
    mirrored and centre-cropped (48 images), so no evaluation image takes part."""
    from skimage import data

    from lookalike.demo import PHOTOS

    images = []
    for name in PHOTOS:
        photo = Image.fromarray(getattr(data, name)()).convert("RGB")
        w, h = photo.size
        crop = photo.crop((w // 4, h // 4, w - w // 4, h - h // 4))
        images += [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), crop]
    return [preprocess.batch(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]


def quantize_int8(float_model: Path, path: Path, preprocess: Preprocess) -> Path:
    """Static int8 quantisation of ``float_model`` into ``path`` (atomically), unless cached.

    Weights per output channel (int8) and activations (uint8) in QDQ form, with ranges from
    :func:`calibration_batches`: CPUs with VNNI instructions run it two to three times faster.
    """
    if path.is_file():
        return path
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter(calibration_batches(preprocess))

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
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
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


class OnnxEmbedder:
    """A :class:`TorchEmbedder`'s vectors, computed by ONNX Runtime.

    In float32 (the default) it keeps the ``model_id``, ``dim`` and ``image_size`` of the
    PyTorch embedder it wraps: the vectors agree to float rounding, so indexes made by either
    are interchangeable. Exporting takes seconds, so until the model is cached, fewer than
    ``export_at`` images (a search, a small folder) are embedded by PyTorch.

    With ``int8`` the network is quantised (:func:`quantize_int8`); its vectors differ
    slightly, so its ``model_id`` ends in ``-int8`` and PyTorch never stands in for it.
    """

    def __init__(
        self,
        embedder: TorchEmbedder,
        threads: int | None = None,
        folder: Path | None = None,
        export_at: int = EXPORT_AT,
        int8: bool = False,
    ) -> None:
        self.torch = embedder
        self.preprocess = embedder.preprocess
        self.model_id = embedder.model_id + ("-int8" if int8 else "")
        self.dim = embedder.dim
        self.image_size = embedder.image_size
        self.float_path = onnx_path(embedder, folder)
        self.path = (
            self.float_path.with_name(self.float_path.stem + "-int8.onnx")
            if int8
            else self.float_path
        )
        self.int8 = int8
        self.threads = threads
        self.export_at = 0 if int8 else export_at
        self._session: Any = None

    def session(self) -> Any:
        """The ONNX Runtime session, exporting (and quantising) the model if not cached."""
        if self._session is None:
            path = export_model(self.torch, self.float_path)
            if self.int8:
                path = quantize_int8(path, self.path, self.preprocess)
            self._session = open_session(path, self.threads)
        return self._session

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB images; returns float32 (n, dim), each row L2-normalised."""
        if self._session is None and len(images) < self.export_at and not self.path.is_file():
            return self.torch.embed(images)
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.run(self.preprocess.batch(images))

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Normalised images float32 (n, 3, size, size) -> L2-normalised vectors (n, dim)."""
        (vectors,) = self.session().run([OUTPUT], {INPUT: batch})
        return l2_normalise(np.asarray(vectors, dtype=np.float32))
