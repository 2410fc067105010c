"""Images to vectors: networks, pooling, preprocessing and the models registry."""

from lookalike.embed.embedder import Embedder
from lookalike.embed.registry import create_embedder, list_models

__all__ = ["Embedder", "create_embedder", "list_models"]
