"""A backbone made into an embedding network: feature map -> learned GeM -> head -> L2
(-> learned whitening -> L2).

This is what ``lookalike train`` trains and what a trained model directory holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from lookalike.embed.pooling import GEM_P, gem

if TYPE_CHECKING:
    from lookalike.embed.embedder import Backbone
    from lookalike.store.whitening import Whitening


class GeM(nn.Module):
    """Generalised-mean pooling with a learned exponent ``p`` (Radenović et al., 2018)."""

    def __init__(self, p: float = GEM_P) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(n, c, h, w) -> (n, c)."""
        return gem(features, self.p.clamp(min=1.0))


class RetrievalNet(nn.Module):
    """``backbone.forward_features`` -> :class:`GeM` -> head -> L2-normalised (n, dim).

    The head is the backbone's own ``forward_head`` when it has one (seed_cnn's fully
    connected layer); otherwise a linear layer of ``dim`` outputs, initialised to the
    identity when ``dim`` equals the backbone's width so that training starts from the
    pretrained embedding. ``whitened`` makes room for a whitening layer (:meth:`set_whitening`)
    that a saved state dict fills.
    """

    backbone: Backbone

    def __init__(
        self,
        backbone: Backbone,
        gem_p: float = GEM_P,
        dim: int | None = None,
        whitened: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = GeM(gem_p)
        width = backbone.num_features
        self.head: nn.Module | None = None
        if not hasattr(backbone, "forward_head"):
            self.head = nn.Linear(width, dim or width)
            if (dim or width) == width:
                nn.init.eye_(self.head.weight)
                nn.init.zeros_(self.head.bias)
        self.whiten: nn.Linear | None = None
        with torch.no_grad():
            probe = self.embed_pooled(torch.zeros(1, width))
        self.dim = int(probe.shape[1])
        if whitened:
            self.whiten = nn.Linear(self.dim, self.dim).requires_grad_(False)

    def embed_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """(n, num_features) pooled features -> (n, dim) unit vectors."""
        backbone: Any = self.backbone  # forward_head is optional: not in the Backbone protocol
        head: Any = self.head if self.head is not None else backbone.forward_head
        vectors = F.normalize(head(pooled), dim=1)
        return vectors if self.whiten is None else F.normalize(self.whiten(vectors), dim=1)

    def set_whitening(self, whitening: Whitening | None) -> None:
        """Apply ``whitening`` (learned on this network's unit vectors) as a fixed last
        layer, ``x -> (x - mean) @ projection``, then L2 again; None removes it."""
        if whitening is None:
            if self.whiten is not None:
                self.dim, self.whiten = self.whiten.in_features, None
            return
        layer = nn.Linear(len(whitening.mean), whitening.dim).requires_grad_(False)
        projection = torch.from_numpy(whitening.projection)
        layer.weight.copy_(projection.T)
        layer.bias.copy_(-torch.from_numpy(whitening.mean) @ projection)
        self.whiten = layer
        self.dim = whitening.dim

    def embed_features(self, features: torch.Tensor) -> torch.Tensor:
        """(n, c, h, w) backbone feature map -> (n, dim) unit vectors."""
        return self.embed_pooled(self.pool(features))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) normalised images -> (n, dim) unit vectors."""
        return self.embed_features(self.backbone.forward_features(images))

    def channels_last(self) -> RetrievalNet:
        """Convolution weights in channels-last order: about 2x faster on the CPU (measured
        on MobileNetV2), given inputs in the same order."""
        return self.to(memory_format=torch.channels_last)  # type: ignore[call-overload,no-any-return]

    def head_parameters(self) -> list[nn.Parameter]:
        """The parameters after the backbone's feature map (GeM ``p`` and our head)."""
        return [*self.pool.parameters(), *(self.head.parameters() if self.head else [])]
