"""Models by name: :func:`register_model` to add one, :func:`create_embedder` to use one.

Nothing here imports PyTorch. An entry names the function that builds its network, imported
only when the network runs in PyTorch or is exported; a model whose ONNX file is cached runs
without PyTorch (a cold ``lookalike search`` saves the second or more it takes to import).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from lookalike.config import runtime_override, weights_override
from lookalike.embed.calibration import CALIBRATION
from lookalike.embed.clip import PREFIX as CLIP_PREFIX
from lookalike.embed.clip import ClipEmbedder, canonical_clip, is_clip
from lookalike.embed.interface import Embedder
from lookalike.embed.model_id import float_model_id, is_int8
from lookalike.embed.onnx import ExportSpec, OnnxEmbedder, onnx_available
from lookalike.embed.preprocess import Preprocess
from lookalike.embed.weights import WeightsSource, explicit_weights, file_digest, find_weights
from lookalike.errors import ModelNotFoundError

if TYPE_CHECKING:
    from lookalike.embed.classes import ClassHead
    from lookalike.embed.embedder import Backbone, TorchEmbedder

RUNTIMES = ("onnx", "onnx-int8", "torch")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how it sees images, where its weights come from, what builds it.

    ``builder`` is "module:function"; the function takes the weights file (None only when the
    entry has no ``weights`` source and none is given by hand) and returns the backbone with
    its weights loaded, in eval mode. Nothing is imported until :meth:`build`.
    """

    name: str
    builder: str
    preprocess: Preprocess = field(default_factory=Preprocess)
    pooling: str = "gap"
    weights: WeightsSource | None = None  # None: the network makes its own (a seeded init)
    scales: tuple[float, ...] = (1.0,)
    # int8 by default: measured by benchmarks/int8_accuracy.py to lose < 1 point of MAP@R
    int8: bool = False
    # the network has ImageNet's classifier (``imagenet_head()``): images get classes, so
    # the index can be searched by words (lookalike.search.text)
    classes: bool = False

    def build(self, weights: Path | None) -> Backbone:
        module, function = self.builder.split(":")
        return cast("Backbone", getattr(importlib.import_module(module), function)(weights))


_MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> None:
    _MODELS[entry.name] = entry


def list_models() -> list[str]:
    _load_builtin_models()
    return sorted(_MODELS)


def model_entry(name: str) -> ModelEntry:
    """The registered model ``name``; raises :class:`ModelNotFoundError` naming the others."""
    _load_builtin_models()
    entry = _MODELS.get(name)
    if entry is None:
        raise ModelNotFoundError(f"unknown model {name!r}; choose from {', '.join(list_models())}")
    return entry


def given_weights(weights: Path | str | None) -> Path | None:
    """A weights file given by hand (``weights``, else ``$LOOKALIKE_WEIGHTS``), or None."""
    chosen = weights or weights_override()
    return explicit_weights(chosen) if chosen else None


def weights_file(entry: ModelEntry, given: Path | None) -> Path | None:
    """The file the network loads: ``given``, else the entry's own (None: it has none)."""
    if given is not None or entry.weights is None:
        return given
    return find_weights(entry.weights)


def vector_space(entry: ModelEntry, given: Path | None) -> str:
    """The name that starts the model id: weights given by hand (say, a trained seed_cnn)
    make another vector space, so the id names the file by its content."""
    return f"{entry.name}@{file_digest(given)}" if given else entry.name


def choose_runtime(entry: ModelEntry, runtime: str | None, given: Path | None) -> str:
    """The runtime asked for (else ``$LOOKALIKE_RUNTIME``, else the default), as it will run:
    "onnx" falls back to "torch" without onnxruntime, and so do multi-scale models."""
    runtime = runtime or runtime_override()
    if runtime is None:
        runtime = "onnx-int8" if entry.int8 and not given and onnx_available() else "onnx"
    if runtime not in RUNTIMES:
        raise ModelNotFoundError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if runtime == "onnx-int8" and not onnx_available():
        raise ModelNotFoundError("the int8 runtime needs onnxruntime: pip install onnxruntime")
    if entry.scales != (1.0,) or (runtime == "onnx" and not onnx_available()):
        return "torch"  # the exported graph has one input size
    return runtime


def create_backbone(name: str, weights: Path | str | None = None) -> Backbone:
    """The registered model's backbone (PyTorch) with its weights loaded, in eval mode."""
    entry = model_entry(name)
    return entry.build(weights_file(entry, given_weights(weights)))


def create_torch_embedder(
    name: str, weights: Path | str | None = None, pooling: str | None = None
) -> TorchEmbedder:
    """The registered model run by PyTorch (what ``runtime="torch"`` gives)."""
    entry = model_entry(name)
    return _torch_embedder(entry, given_weights(weights), pooling)


def has_classes(entry: ModelEntry, given: Path | None) -> bool:
    """Whether the entry's embedder classifies: its own pretrained weights, not a file given
    by hand (whose classifier may not be ImageNet's any more)."""
    return entry.classes and given is None


def model_classifies(name: str, weights: Path | str | None = None) -> bool:
    """Whether the model ``name`` (an index's) stores ImageNet classes, known without
    building it: a registered model with its own classifier and weights."""
    if is_clip(name) or Path(name).expanduser().is_dir():
        return False
    try:
        entry = model_entry(name)
    except ModelNotFoundError:
        return False
    return has_classes(entry, given_weights(weights))


def _torch_embedder(entry: ModelEntry, given: Path | None, pooling: str | None) -> TorchEmbedder:
    from lookalike.embed.classes import ClassHead
    from lookalike.embed.embedder import TorchEmbedder

    backbone = entry.build(weights_file(entry, given))
    space = vector_space(entry, given)
    head = ClassHead.of(backbone.imagenet_head()) if has_classes(entry, given) else None  # type: ignore[attr-defined]
    return TorchEmbedder(
        space, backbone, entry.preprocess, pooling or entry.pooling, entry.scales, head
    )


def _onnx_embedder(
    entry: ModelEntry, given: Path | None, pooling: str | None, int8: bool
) -> OnnxEmbedder:
    pooling = pooling or entry.pooling
    file = weights_file(entry, given)
    spec = ExportSpec(
        float_model_id(vector_space(entry, given), pooling, entry.preprocess),
        entry.preprocess,
        file_digest(file, length=64) if file else "init",
    )
    embedder = OnnxEmbedder(
        spec,
        lambda: _torch_embedder(entry, given, pooling),
        calibration=CALIBRATION if int8 else None,
        head=_head_of(lambda: embedder) if has_classes(entry, given) else None,
    )
    return embedder


def _head_of(onnx: Callable[[], OnnxEmbedder]) -> Callable[[], ClassHead]:
    """The ImageNet head of the ONNX embedder's PyTorch network, built only when uncached."""

    def make() -> ClassHead:
        head = onnx().torch().class_head
        assert head is not None  # built by _torch_embedder from the same entry
        return head

    return make


def create_embedder(
    name: str,
    weights: Path | str | None = None,
    pooling: str | None = None,
    runtime: str | None = None,
) -> Embedder:
    """Build the named model's embedder (weights loaded, in eval mode); ``name`` may also be
    a model directory written by ``lookalike train`` (run by PyTorch), or ``clip:DIR``, a
    CLIP model's two ONNX encoders (:mod:`lookalike.embed.clip`).

    ``runtime`` (else ``$LOOKALIKE_RUNTIME``) runs the network with ONNX Runtime ("onnx"), or
    with PyTorch ("torch", also the fallback when onnxruntime is not installed); both give
    the same vectors and ``model_id``. "onnx-int8" quantises it: other vectors, another id.
    The default is "onnx-int8" for models registered with ``int8=True`` and their own
    weights, else "onnx".
    """
    if is_clip(name):
        return ClipEmbedder(name.removeprefix(CLIP_PREFIX))
    if Path(name).expanduser().is_dir():
        from lookalike.embed.model_dir import load_model_dir

        return load_model_dir(name)
    entry = model_entry(name)
    given = given_weights(weights)
    runtime = choose_runtime(entry, runtime, given)
    if runtime == "torch":
        return _torch_embedder(entry, given, pooling)
    return _onnx_embedder(entry, given, pooling, int8=runtime == "onnx-int8")


def runtime_for(model_id: str) -> str:
    """The runtime that makes more vectors with this id, whatever the default now is.

    An index made by the int8 network needs it again; a float32 index needs a float runtime
    (PyTorch where ``$LOOKALIKE_RUNTIME`` says so, else ONNX Runtime's float32).
    """
    if is_int8(model_id):
        return "onnx-int8"
    return "torch" if runtime_override() == "torch" else "onnx"


def canonical_model_name(name: str) -> str:
    """A registered name as given; a model directory as its absolute path, which is what an
    index stores, so that it reopens the model from any working directory (``clip:DIR``
    too)."""
    if is_clip(name):
        return canonical_clip(name)
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def _load_builtin_models() -> None:
    import lookalike.embed.models  # noqa: F401  (registers them)
