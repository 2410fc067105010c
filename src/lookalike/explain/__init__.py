"""See what the CNN sees: why two images matched (:func:`explain_match`), what each layer
makes of an image (:func:`layer_views`), and the course's worked examples
(:func:`course_examples`), all computed by the project's own networks and layers.

The names are loaded on first use (PEP 562): the CLI imports ``lookalike.explain.cli`` to
build its parser, and that must not import PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Explanation": "similarity",
    "explain_match": "similarity",
    "LayerView": "layers",
    "LayerViews": "layers",
    "layer_views": "layers",
    "course_examples": "course",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'lookalike.explain' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lookalike.explain.{_HOMES[name]}"), name)
