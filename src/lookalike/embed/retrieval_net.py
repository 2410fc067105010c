"""A backbone made into an embedding network: feature map -> learned GeM -> head -> L2.

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
    pretrained embedding.
    """

    backbone: Backbone

    def __init__(self, backbone: Backbone, gem_p: float = GEM_P, dim: int | None = None) -> None:
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
        with torch.no_grad():
            probe = self.embed_pooled(torch.zeros(1, width))
        self.dim = int(probe.shape[1])

    def embed_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """(n, num_features) pooled features -> (n, dim) unit vectors."""
        backbone: Any = self.backbone  # forward_head is optional: not in the Backbone protocol
        head: Any = self.head if self.head is not None else backbone.forward_head
        return F.normalize(head(pooled), dim=1)

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
