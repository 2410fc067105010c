"""A trained model as a self-contained directory, usable wherever a model name is.

``MODEL_DIR/`` holds ``weights.pt`` (the :class:`RetrievalNet` state dict), ``model.json``
(architecture, preprocessing, pooling with its learned GeM ``p``, dimension, whether a learned
whitening layer ends the network, model id) and ``MODEL_CARD.md`` (training data, settings,
validation figures). The model id ends with a hash of the weights, so vectors from two
trainings never mix in one index. :mod:`lookalike.embed.model_info` reads ``model.json``
without PyTorch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lookalike.embed.embedder import FeatureMaps, Stages, feature_maps
from lookalike.embed.model_info import (
    FORMAT,
    MODEL_CARD,
    MODEL_JSON,
    WEIGHTS,
    ModelInfo,
    read_model_info,
)
from lookalike.embed.preprocess import Preprocess
from lookalike.embed.retrieval_net import RetrievalNet
from lookalike.errors import ModelNotFoundError


def save_model_dir(
    directory: Path,
    net: RetrievalNet,
    architecture: str,
    preprocess: Preprocess,
    card: str,
    extra: dict[str, Any] | None = None,
) -> ModelInfo:
    """Write ``net`` into ``directory`` (created if needed); each file is replaced atomically,
    model.json last, so a reader sees the old model or the new one, never a mix."""
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    weights = buffer.getvalue()
    sha = hashlib.sha256(weights).hexdigest()
    info = ModelInfo(
        architecture,
        preprocess,
        net.pool.p.item(),
        net.dim,
        f"{architecture}-trained-{sha[:12]}",
        sha,
        net.whiten is not None,
    )
    meta = {
        "format": FORMAT,
        "architecture": architecture,
        "preprocess": {
            "mode": preprocess.mode,
            "size": preprocess.size,
            "mean": list(preprocess.mean),
            "std": list(preprocess.std),
        },
        "pooling": {"name": "gem", "p": info.gem_p},
        "dim": info.dim,
        "whitened": info.whitened,
        "model_id": info.model_id,
        "weights": WEIGHTS,
        "weights_sha256": sha,
        **(extra or {}),
    }
    _write_atomic(directory / WEIGHTS, weights)
    _write_atomic(directory / MODEL_CARD, card.encode())
    _write_atomic(directory / MODEL_JSON, (json.dumps(meta, indent=2) + "\n").encode())
    return info


def load_model_dir(directory: str | Path) -> TrainedEmbedder:
    """The embedder a ``lookalike train`` model directory holds, in eval mode."""
    from lookalike.embed.registry import create_backbone  # the registry imports this module

    path = Path(directory).expanduser().resolve()
    info = read_model_info(path)
    weights = (path / WEIGHTS).read_bytes() if (path / WEIGHTS).is_file() else b""
    if hashlib.sha256(weights).hexdigest() != info.weights_sha256:
        raise ModelNotFoundError(f"{path / WEIGHTS} is missing or does not match model.json")
    net = RetrievalNet(create_backbone(info.architecture), info.gem_p, info.dim, info.whitened)
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    net.channels_last()
    return TrainedEmbedder(net.eval(), info.preprocess, info.model_id)


class TrainedEmbedder:
    """:class:`RetrievalNet` behind the :class:`~lookalike.embed.interface.Embedder` interface."""

    def __init__(self, net: RetrievalNet, preprocess: Preprocess, model_id: str) -> None:
        self.net = net
        self.preprocess = preprocess
        self.model_id = model_id
        self.dim = net.dim
        self.image_size = preprocess.size

    @torch.inference_mode()
    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = torch.from_numpy(self.preprocess.batch(images))
        vectors = self.net(batch.contiguous(memory_format=torch.channels_last))
        return np.ascontiguousarray(vectors.numpy(), dtype=np.float32)

    def feature_maps(self, images: Sequence[Image.Image], indices: Stages = None) -> FeatureMaps:
        """The trained backbone's final map and chosen stages' maps of RGB images."""
        return feature_maps(self.net.backbone, self.preprocess, images, indices)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
