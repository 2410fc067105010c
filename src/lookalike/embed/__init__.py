"""Images to vectors: networks, pooling, preprocessing and the models registry.

Names are imported on first use, so that a decode worker process, which needs only
``lookalike.embed.pipeline`` and ``preprocess``, never pays for importing PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lookalike.lazy import lazy_attributes

if TYPE_CHECKING:
    from lookalike.embed.embedder import Embedder
    from lookalike.embed.registry import create_embedder, list_models

__all__ = ["Embedder", "create_embedder", "list_models"]

__getattr__ = lazy_attributes(
    __name__,
    {
        "Embedder": "lookalike.embed.embedder",
        "create_embedder": "lookalike.embed.registry",
        "list_models": "lookalike.embed.registry",
    },
)
