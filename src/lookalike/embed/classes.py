"""ImageNet class probabilities from the classifier head of a pretrained backbone, computed in
the same pass as the vectors, and kept compactly (the top classes) for search by words.

The head is linear on the average-pooled feature map, which is what the exported graph
already outputs before L2 normalisation (``gap`` pooling, no learned head). So the head runs
here in NumPy on that output: the exported graph, hence every float and int8 vector, is left
exactly as it was, and a cached ONNX file needs no re-export. Its weights are cached beside
the ONNX file (``*-classes.npz``), so classifying needs no PyTorch either.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import nn

NUM_CLASSES = 1000  # ImageNet-1k, in the classifier's output order
TOP = 10  # classes kept per image (40 bytes): a query names few classes, an image shows few


@dataclass(frozen=True)
class TopClasses:
    """An image's most probable classes: ``ids`` uint16 (k,), ``probs`` float16 (k,), most
    probable first; the probabilities are the softmax over all 1,000 classes."""

    ids: np.ndarray
    probs: np.ndarray

    def to_bytes(self) -> tuple[bytes, bytes]:
        return (
            np.ascontiguousarray(self.ids, dtype="<u2").tobytes(),
            np.ascontiguousarray(self.probs, dtype="<f2").tobytes(),
        )

    @classmethod
    def from_bytes(cls, ids: bytes, probs: bytes) -> TopClasses:
        return cls(np.frombuffer(ids, dtype="<u2"), np.frombuffer(probs, dtype="<f2"))


@dataclass(frozen=True)
class ClassHead:
    """The classifier: ``weight`` float32 (1000, d), ``bias`` float32 (1000,)."""

    weight: np.ndarray
    bias: np.ndarray

    def probabilities(self, pooled: np.ndarray) -> np.ndarray:
        """Average-pooled features float32 (n, d), not normalised -> softmax (n, 1000)."""
        logits = pooled.astype(np.float32) @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float32)

    def top(self, pooled: np.ndarray, k: int = TOP) -> list[TopClasses]:
        """The ``k`` most probable classes of each row of ``pooled`` (n, d)."""
        probs = self.probabilities(pooled)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [
            TopClasses(row.astype(np.uint16), p[row].astype(np.float16))
            for row, p in zip(order, probs, strict=True)
        ]

    @classmethod
    def of(cls, linear: nn.Linear) -> ClassHead:
        """The head of a PyTorch network (its ``imagenet_head()``)."""
        return cls(
            linear.weight.detach().float().numpy().copy(),
            linear.bias.detach().float().numpy().copy(),
        )


def head_path(onnx_file: Path) -> Path:
    """Where the head of the network exported to ``onnx_file`` is cached."""
    return onnx_file.with_name(f"{onnx_file.stem}-classes.npz")


def cached_head(path: Path, make: Callable[[], ClassHead]) -> ClassHead:
    """The head cached at ``path``, else ``make()`` it (PyTorch) and cache it atomically."""
    if path.is_file():
        with np.load(path) as saved:
            return ClassHead(saved["weight"], saved["bias"])
    head = make()
    save_arrays(path, weight=head.weight, bias=head.bias)
    return head


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write an ``.npz`` cache file atomically: readers see no file or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
