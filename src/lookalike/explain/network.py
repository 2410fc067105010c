"""The float PyTorch network behind any embedder, seen as explain needs it: a backbone whose
final map is pooled, passed through an optional head, and L2-normalised.

Every embedder is reduced to this one shape, so that the similarity decomposition and the
layer views need no per-model code: a built-in model run by PyTorch or ONNX Runtime (float or
int8: always the float network), and a ``lookalike train`` model directory (learned GeM).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from lookalike.embed.embedder import Backbone, FeatureMaps, Stages, TorchEmbedder, feature_maps
from lookalike.embed.interface import Embedder
from lookalike.embed.model_dir import TrainedEmbedder
from lookalike.embed.onnx import OnnxEmbedder
from lookalike.embed.pooling import GEM_P
from lookalike.embed.preprocess import Preprocess
from lookalike.errors import LookalikeError

GEM_EPS = 1e-6  # as lookalike.embed.pooling.gem clamps the map


@dataclass(frozen=True)
class FloatNetwork:
    """Backbone -> ``pooling`` (gap/spoc, mac, or gem with exponent ``gem_p``) -> ``head``
    (None, or an affine map: a fully connected layer) -> L2 normalisation.

    ``int8`` says the embedder that made the index's vectors is this network quantised;
    ``scales`` are the embedder's (the maps are of scale 1 only).
    """

    backbone: Backbone
    preprocess: Preprocess
    pooling: str
    gem_p: float
    head: Callable[[torch.Tensor], torch.Tensor] | None
    int8: bool = False
    scales: tuple[float, ...] = (1.0,)

    def maps(self, images: Sequence[Image.Image], indices: Stages = None) -> FeatureMaps:
        """The final map and the chosen stages' maps of RGB images (:class:`FeatureMaps`)."""
        return feature_maps(self.backbone, self.preprocess, images, indices)

    @torch.inference_mode()
    def cell_vectors(self, final: np.ndarray) -> np.ndarray:
        """One image's final map float32 (c, h, w) -> float32 (h * w, d), row-major cells,
        whose sum is the image's vector before L2 normalisation (exactly, for every pooling).

        Each cell gets its share of the pooled vector: for average pooling its own values
        over h * w; for GeM, channel by channel, the pooled value times the cell's share of
        the sum of x^p (exact in sum, an attribution choice per cell, the same that makes
        GeM lean towards the strongest cells); for max pooling all of it goes to the cell
        holding the maximum. An affine head W s + b is then applied to each share as
        W s_i + b / (h * w), which sums to the head of the pooled vector.
        """
        x = torch.from_numpy(np.ascontiguousarray(final, dtype=np.float32))
        c, h, w = x.shape
        cells = x.reshape(c, h * w).T  # (n, c)
        n = h * w
        if self.pooling in ("gap", "spoc"):
            shares = cells / n
        elif self.pooling == "gem":
            powered = cells.clamp(min=GEM_EPS).pow(self.gem_p)
            pooled = powered.mean(dim=0).pow(1.0 / self.gem_p)
            shares = pooled * powered / powered.sum(dim=0)
        elif self.pooling == "mac":
            shares = torch.zeros_like(cells)
            top = cells.argmax(dim=0)
            shares[top, torch.arange(c)] = cells[top, torch.arange(c)]
        else:
            raise LookalikeError(f"cannot explain {self.pooling!r} pooling")
        if self.head is not None:
            bias = self.head(torch.zeros(1, c))
            shares = self.head(shares) - bias + bias / n
        return np.ascontiguousarray(shares.numpy(), dtype=np.float32)

    def first_convolution(self) -> nn.Conv2d:
        """The convolution that reads the image: the first one of the first block."""
        first = self.backbone.blocks()[0]
        for module in first.modules():
            if isinstance(module, nn.Conv2d):
                return module
        raise LookalikeError(f"{type(self.backbone).__name__} starts without a convolution")


def float_network(embedder: Embedder) -> FloatNetwork:
    """The float PyTorch network of a built-in model's embedder (any runtime) or of a trained
    model directory; raises LookalikeError for an embedder of another kind."""
    if isinstance(embedder, OnnxEmbedder):
        network = float_network(embedder.torch())
        return FloatNetwork(
            network.backbone,
            network.preprocess,
            network.pooling,
            network.gem_p,
            network.head,
            int8=embedder.calibration is not None,
        )
    if isinstance(embedder, TorchEmbedder):
        return FloatNetwork(
            embedder.backbone,
            embedder.preprocess,
            embedder.pooling,
            GEM_P,
            embedder.head,
            scales=embedder.scales,
        )
    if isinstance(embedder, TrainedEmbedder):
        net = embedder.net
        head = net.head if net.head is not None else getattr(net.backbone, "forward_head", None)
        return FloatNetwork(
            net.backbone,
            embedder.preprocess,
            "gem",
            float(net.pool.p.detach().clamp(min=1.0)),
            head,
        )
    raise LookalikeError(f"cannot look inside a {type(embedder).__name__} model")
