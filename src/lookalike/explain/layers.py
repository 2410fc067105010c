"""What the network sees: its first filters, and the feature maps of each stage for one image.

A learner sees depth grow with the number of filters (channels) and the size halve at each
stride-2 stage (seed_cnn's 2x2 max pooling). For seed_cnn every convolution block and every
pooling is a stage; for the pretrained networks, the last block at each resolution and the
final map (:mod:`lookalike.embed.stages`).
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from PIL import Image
from torch import nn

from lookalike.embed.interface import Embedder
from lookalike.embed.preprocess import Preprocess
from lookalike.explain.network import float_network

CHANNELS = 4  # maps shown per stage: the strongest channels


@dataclass(frozen=True)
class LayerView:
    """One stage's output for one image.

    ``shape`` (channels, height, width) of the whole map; ``channels`` the indices of the
    strongest channels (highest mean activation), strongest first; ``maps`` float32
    (len(channels), height, width) their values. ``stride``: input pixels per map cell.
    """

    name: str  # the block's module path, e.g. "features.1"
    kind: str  # the block's class, e.g. "MaxPool"
    shape: tuple[int, int, int]
    stride: int
    channels: list[int]
    maps: np.ndarray


@dataclass(frozen=True)
class LayerViews:
    """The network input, the first convolution's filters and every stage's view.

    ``input`` uint8 (size, size, 3): the image as the network gets it (letterboxed, resized).
    ``filters`` float32 (n, 3, k, k): the first convolution's weights.
    """

    model_id: str
    input: np.ndarray
    filters: np.ndarray
    filter_stride: int
    stages: list[LayerView]

    def as_dict(self) -> dict[str, object]:
        """The JSON of the REST API: ``input`` as a PNG data URL, values to 4 digits."""
        buffer = io.BytesIO()
        Image.fromarray(self.input).save(buffer, "PNG")
        return {
            "model_id": self.model_id,
            "input": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(),
            "filters": _rounded(self.filters),
            "filter_stride": self.filter_stride,
            "stages": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "shape": list(s.shape),
                    "stride": s.stride,
                    "channels": s.channels,
                    "maps": _rounded(s.maps),
                }
                for s in self.stages
            ],
        }


def layer_views(embedder: Embedder, image: Image.Image, channels: int = CHANNELS) -> LayerViews:
    """The first filters and every stage's ``channels`` strongest maps of an RGB image, from
    the embedder's float network (int8 models too)."""
    network = float_network(embedder)
    maps = network.maps([image])
    modules = dict(cast(nn.Module, network.backbone).named_modules())
    stages = []
    for info, stage in zip(maps.stage_info, maps.stages, strict=True):
        values = stage[0]
        strongest = np.argsort(values.mean(axis=(1, 2)))[::-1][:channels]
        stages.append(
            LayerView(
                info.name,
                type(modules[info.name]).__name__,
                (int(values.shape[0]), int(values.shape[1]), int(values.shape[2])),
                info.stride,
                [int(c) for c in strongest],
                np.ascontiguousarray(values[strongest]),
            )
        )
    conv = network.first_convolution()
    with torch.no_grad():
        filters = conv.weight.detach().float().numpy().copy()
    return LayerViews(
        embedder.model_id,
        _network_input(network.preprocess, image),
        filters,
        int(conv.stride[0]),
        stages,
    )


def _network_input(preprocess: Preprocess, image: Image.Image) -> np.ndarray:
    """uint8 (size, size, 3): the image as the network's input places it, the letterbox
    padding in the mean colour (what normalisation turns into zero)."""
    fitted = preprocess.fit(image)
    red, green, blue = (round(255 * m) for m in preprocess.mean)
    canvas = Image.new("RGB", (preprocess.size, preprocess.size), (red, green, blue))
    canvas.paste(
        fitted, ((preprocess.size - fitted.width) // 2, (preprocess.size - fitted.height) // 2)
    )
    return np.asarray(canvas).copy()


def _rounded(values: np.ndarray) -> object:
    """Nested lists of floats to 4 significant digits of the array's largest value (what a
    person reads off a map)."""
    largest = float(np.abs(values).max()) if values.size else 0.0
    digits = 4 - math.ceil(math.log10(largest)) if largest > 0 else 0
    return np.round(values.astype(np.float64), max(digits, 0)).tolist()
