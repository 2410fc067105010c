"""Models by name: ``@register_model`` to add one, ``create_embedder(name)`` to use one."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lookalike.embed.embedder import Backbone, TorchEmbedder
from lookalike.embed.interface import Embedder
from lookalike.embed.onnx import OnnxEmbedder, onnx_available
from lookalike.embed.preprocess import Preprocess
from lookalike.embed.weights import file_digest
from lookalike.errors import ModelNotFoundError

BackboneFactory = Callable[[Path | None], Backbone]
RUNTIMES = ("onnx", "onnx-int8", "torch")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build its backbone and how it sees images."""

    name: str
    build: BackboneFactory  # weights path or None -> backbone with weights loaded
    preprocess: Preprocess
    pooling: str
    scales: tuple[float, ...] = (1.0,)
    # int8 by default: measured by benchmarks/int8_accuracy.py to lose < 1 point of MAP@R
    int8: bool = False


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    preprocess: Preprocess | None = None,
    pooling: str = "gap",
    scales: tuple[float, ...] = (1.0,),
    int8: bool = False,
) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator registering a backbone factory under ``name``."""

    def add(build: BackboneFactory) -> BackboneFactory:
        _MODELS[name] = ModelEntry(name, build, preprocess or Preprocess(), pooling, scales, int8)
        return build

    return add


def list_models() -> list[str]:
    _load_builtin_models()
    return sorted(_MODELS)


def create_embedder(
    name: str,
    weights: Path | str | None = None,
    pooling: str | None = None,
    runtime: str | None = None,
) -> Embedder:
    """Build the named model's embedder (weights loaded, in eval mode); ``name`` may also be
    a model directory written by ``lookalike train`` (run by PyTorch).

    ``runtime`` (else ``$LOOKALIKE_RUNTIME``) runs the network with ONNX Runtime ("onnx"), or
    with PyTorch ("torch", also the fallback when onnxruntime is not installed); both give
    the same vectors and ``model_id``. "onnx-int8" quantises it: other vectors, another id.
    The default is "onnx-int8" for models registered with ``int8=True`` and their own
    weights, else "onnx".
    """
    if Path(name).expanduser().is_dir():
        from lookalike.embed.model_dir import load_model_dir

        return load_model_dir(name)
    _load_builtin_models()
    entry = _MODELS.get(name)
    if entry is None:
        raise ModelNotFoundError(f"unknown model {name!r}; choose from {', '.join(list_models())}")
    explicit = weights or os.environ.get("LOOKALIKE_WEIGHTS")
    path = Path(explicit).expanduser() if explicit else None
    runtime = runtime or os.environ.get("LOOKALIKE_RUNTIME")
    if runtime is None:
        runtime = "onnx-int8" if entry.int8 and not path and onnx_available() else "onnx"
    if runtime not in RUNTIMES:
        raise ModelNotFoundError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if runtime == "onnx-int8" and not onnx_available():
        raise ModelNotFoundError("the int8 runtime needs onnxruntime: pip install onnxruntime")
    backbone = entry.build(path)
    # Weights given by hand (say, a trained seed_cnn) make another vector space than the
    # default ones: the id says which file, so an index refuses vectors from other weights.
    space = f"{name}@{file_digest(path)}" if path else name
    embedder = TorchEmbedder(
        space, backbone, entry.preprocess, pooling or entry.pooling, entry.scales
    )
    if embedder.scales != (1.0,):  # the exported graph has one input size: PyTorch
        return embedder
    if runtime == "onnx-int8":  # other vectors than PyTorch's: no fallback
        return OnnxEmbedder(embedder, int8=True)
    if runtime == "onnx" and onnx_available():
        return OnnxEmbedder(embedder)
    return embedder


def runtime_for(model_id: str) -> str:
    """The runtime that makes more vectors with this id, whatever the default now is.

    An index made by the int8 network needs it again; a float32 index needs a float runtime
    (PyTorch where ``$LOOKALIKE_RUNTIME`` says so, else ONNX Runtime's float32).
    """
    if model_id.endswith("-int8"):
        return "onnx-int8"
    return "torch" if os.environ.get("LOOKALIKE_RUNTIME") == "torch" else "onnx"


def canonical_model_name(name: str) -> str:
    """A registered name as given; a model directory as its absolute path, which is what an
    index stores, so that it reopens the model from any working directory."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def _load_builtin_models() -> None:
    # Importing the network modules runs their @register_model decorators.
    from lookalike.embed.networks import efficientnet_lite, mobilenet_v2, seed_cnn  # noqa: F401
