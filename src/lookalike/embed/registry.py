"""Models by name: ``@register_model`` to add one, ``create_embedder(name)`` to use one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lookalike.embed.embedder import Backbone, Embedder, TorchEmbedder
from lookalike.embed.preprocess import Preprocess
from lookalike.errors import ModelNotFoundError

BackboneFactory = Callable[[Path | None], Backbone]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build its backbone and how it sees images."""

    name: str
    build: BackboneFactory  # weights path or None -> backbone with weights loaded
    preprocess: Preprocess
    pooling: str
    scales: tuple[float, ...] = (1.0,)


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    preprocess: Preprocess | None = None,
    pooling: str = "gap",
    scales: tuple[float, ...] = (1.0,),
) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator registering a backbone factory under ``name``."""

    def add(build: BackboneFactory) -> BackboneFactory:
        _MODELS[name] = ModelEntry(name, build, preprocess or Preprocess(), pooling, scales)
        return build

    return add


def list_models() -> list[str]:
    _load_builtin_models()
    return sorted(_MODELS)


def create_embedder(
    name: str, weights: Path | str | None = None, pooling: str | None = None
) -> Embedder:
    """Build the named model's embedder (weights loaded, in eval mode)."""
    _load_builtin_models()
    entry = _MODELS.get(name)
    if entry is None:
        raise ModelNotFoundError(f"unknown model {name!r}; choose from {', '.join(list_models())}")
    backbone = entry.build(Path(weights) if weights else None)
    return TorchEmbedder(name, backbone, entry.preprocess, pooling or entry.pooling, entry.scales)


def _load_builtin_models() -> None:
    # Importing the network modules runs their @register_model decorators.
    from lookalike.embed.networks import mobilenet_v2  # noqa: F401
